"""Token benchmark: 50 clients asking Berth for pull tokens, as ``docker pull`` does before each pull.

Run with ``.venv/bin/python -m bench.tokens``. It starts devstack (slapd and a TLS registry,
no Swarm) and Berth under gunicorn as deployed (``gunicorn.conf.py``, default workers and
threads, a fresh data directory), then measures two things:

- **first requests** (a real directory bind each): Berth is started afresh ``--rounds``
  times; each time every demo account asks for one token on a new connection per gunicorn
  worker, so the bind is not yet remembered. Reported as p50/p95/max over all of them.
- **steady state**: 50 clients (one pooled session each, accounts spread over the demo
  users) ask ``GET /auth/token?service=...&scope=repository:<repo>:pull`` in a closed loop
  for ``--seconds``; a successful bind is remembered for 60 s, so these are the requests a
  busy CI fleet makes. Reported per second and as p50/p95/p99/max, with errors.

It prints ``RESULT tokens p95_ms=... first_p95_ms=... errors=...`` against the targets
(p95 < 30 ms remembered, < 100 ms first) with the load average beside them, and writes
``bench/results/tokens.json``. Traffic stays on loopback; every loop is bounded in time.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import threading
import time
from pathlib import Path

import requests

import devstack
from bench.common import save_report
from bench.health import Sample, percentile
from devstack.berth import BerthServer

ACCOUNTS = [("alice", "alice-pw"), ("olivia", "olivia-pw"), ("dave", "dave-pw")]
REPOSITORIES = ["centos", "debian", "node", "wordpress"]
TIMEOUT = 10.0


def token_url(base: str, service: str, repository: str) -> str:
    """The URL ``docker pull`` asks for a pull token."""
    return f"{base}/auth/token?service={service}&scope=repository:{repository}:pull"


def first_requests(server: BerthServer, service: str, workers: int) -> list[float]:
    """Each account's first token from a fresh Berth: a real bind per account and worker."""
    latencies = []
    for username, password in ACCOUNTS:
        for _ in range(workers):  # new connections land on each worker in turn, more or less
            with requests.Session() as session:
                session.trust_env = False
                started = time.perf_counter()
                response = session.get(
                    token_url(server.base_url, service, "centos"), auth=(username, password), timeout=TIMEOUT
                )
                latencies.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
    return latencies


def client_loop(base: str, service: str, seed: int, end: float, out: list[Sample]) -> None:
    """One CI client: a pooled session asking pull tokens until ``end``."""
    rng = random.Random(seed)
    username, password = ACCOUNTS[seed % len(ACCOUNTS)]
    with requests.Session() as session:
        session.trust_env = False
        while (now := time.perf_counter()) < end:
            url = token_url(base, service, rng.choice(REPOSITORIES))
            try:
                status = session.get(url, auth=(username, password), timeout=TIMEOUT).status_code
            except requests.RequestException:
                status = 0
            out.append(Sample("token", now, (time.perf_counter() - now) * 1000, status))


def steady(server: BerthServer, service: str, clients: int, seconds: float) -> tuple[list[Sample], float]:
    """``clients`` closed loops for ``seconds``; the samples and the wall time."""
    samples: list[Sample] = []
    end = time.perf_counter() + seconds
    threads = [
        threading.Thread(target=client_loop, args=(server.base_url, service, i, end, samples), daemon=True)
        for i in range(clients)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + TIMEOUT + 5)
    return samples, time.perf_counter() - started


def stats(values: list[float]) -> dict[str, float]:
    """p50/p95/p99/max of latencies in ms."""
    ordered = sorted(values)
    return {f"p{p}_ms": round(percentile(ordered, p), 1) for p in (50, 95, 99)} | {
        "max_ms": round(ordered[-1], 1) if ordered else 0.0
    }


def main() -> int:
    """Run the benchmark; exit status 1 when a request failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=5, help="fresh starts of Berth for first-request latencies")
    args = parser.parse_args()
    begun = time.perf_counter()
    state = Path(tempfile.mkdtemp(prefix="berth-bench-tokens-"))
    env = devstack.up(state / "stack")
    service = env["BERTH_REGISTRY_URL"].removeprefix("https://")
    settings = env | {"BERTH_PUBLIC_URL": "http://127.0.0.1", "BERTH_LOGIN_ADDRESS_MAX_FAILURES": "1000"}
    workers = int(os.environ.get("BERTH_WORKERS", "2"))
    first: list[float] = []
    try:
        for round_ in range(args.rounds):
            server = BerthServer(settings, state / f"berth-{round_}", state / "gunicorn.log", clean_env=True)
            server.start()
            try:
                first += first_requests(server, service, workers)
                if round_ == args.rounds - 1:
                    samples, wall = steady(server, service, args.clients, args.seconds)
            finally:
                server.stop()
    finally:
        devstack.down(state / "stack")
        shutil.rmtree(state, ignore_errors=True)
    errors = sum(1 for s in samples if s.status != 200)
    statuses: dict[str, int] = {}
    for sample in samples:
        statuses[str(sample.status)] = statuses.get(str(sample.status), 0) + 1
    first_stats = {"count": len(first)} | stats(first)
    steady_stats = {"clients": args.clients, "requests": len(samples), "rps": round(len(samples) / wall, 1)}
    steady_stats |= stats([s.ms for s in samples]) | {"errors": errors}
    load = os.getloadavg()
    report = {"first_requests": first_stats, "steady": steady_stats, "statuses": statuses, "load_average": load}
    print(f"first requests (real bind): {first_stats}")
    print(f"steady, {args.clients} clients, {args.seconds:g} s: {steady_stats} statuses {statuses}")
    print(f"load average: {', '.join(f'{x:.2f}' for x in load)}")
    print(
        f"RESULT tokens p95_ms={steady_stats['p95_ms']} first_p95_ms={first_stats['p95_ms']} "
        f"errors={errors} target_p95_ms=30 target_first_p95_ms=100"
    )
    save_report("tokens", report, 30.0, begun)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
