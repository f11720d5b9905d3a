"""Registry events at scale: a push visible in search at once among 100,000 repositories.

Starts devstack (slapd), a Distribution registry on the 100,000-repository data set
(``bench.dataset --repositories 100000``) whose ``notifications`` point at Berth under
gunicorn (cache TTL 600 s, so nothing becomes visible by expiry), then measures:

(a) a push through the registry API until ``/api/v1/repositories?q=`` lists it (5 pushes);
(b) ``--rate`` events/s for ``--seconds`` posted to ``/api/v1/events`` (one event per
    envelope, as Distribution sends them; 80 % pulls, 19 % tag pushes, 1 % new
    repositories), then every event counted back in SQLite: none lost, none twice;
(c) the cold catalog against the raw floor (``_catalog?n=1000`` pages, one pooled client),
    warm search p95, and peak RSS per worker.

It prints ``RATIO`` lines and writes ``bench/results/events-*.json``. Not a timed test.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import requests

from bench.catalog import berth_catalog, floor_catalog
from bench.common import write_json
from bench.dataset import ensure_dataset, small_repository_names
from bench.stack import PROJECT, BerthServer, bench_stack
from devstack import seed

SECRET = "bench-events-secret-0123456789abcdef"  # noqa: S105 - a throw-away bench secret
DAVE = ("dave", "dave-pw")
MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"
MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DIGEST = "sha256:" + "e" * 64


def notifications(berth_url: str) -> str:
    """The registry's notifications section pointing at Berth."""
    return (
        "notifications:\n  endpoints:\n    - name: berth\n"
        f"      url: {json.dumps(berth_url + '/api/v1/events')}\n"
        f"      headers:\n        Authorization: [{json.dumps('Bearer ' + SECRET)}]\n"
        "      timeout: 5s\n      threshold: 3\n      backoff: 1s\n"
        "      ignoredmediatypes: [application/octet-stream]\n"
    )


def percentile(values: list[float], share: float) -> float:
    """The ``share`` percentile (0..1) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def catalog_and_search(http: requests.Session, berth: BerthServer, stack, searches: int = 200) -> dict:
    """(c): the cold catalog against the floor, then warm search p95."""
    floor, names = floor_catalog(stack.registry_url, stack.ca_cert)
    started = time.perf_counter()
    listed, _ = berth_catalog(http, berth.base_url)
    cold = time.perf_counter() - started
    if len(listed) != len(names):
        raise RuntimeError(f"berth lists {len(listed)} repositories, the registry {len(names)}")
    times = []
    for index in range(searches):
        query = f"ns-{index * 7 % 1000:05d}/app-00{index % 75:02d}"
        started = time.perf_counter()
        answer = http.get(f"{berth.base_url}/api/v1/repositories", params={"q": query}, auth=DAVE, timeout=30)
        times.append(time.perf_counter() - started)
        answer.raise_for_status()
    return {
        "repositories": len(names),
        "floor_s": round(floor.seconds, 3),
        "floor_requests": floor.requests,
        "berth_cold_s": round(cold, 3),
        "cold_over_floor": round(cold / floor.seconds, 2),
        "search_p50_ms": round(statistics.median(times) * 1000, 1),
        "search_p95_ms": round(percentile(times, 0.95) * 1000, 1),
    }


def push_visibility(http: requests.Session, berth: BerthServer, stack, pushes: int = 5) -> dict:
    """(a): push a new repository through the registry, then poll Berth's search until it lists it."""
    spec = seed.demo_images()["centos"]["7"]
    assert isinstance(spec, seed.ImageSpec)
    image = seed.build_image(spec)
    run = uuid.uuid4().hex[:6]
    latencies = []
    with seed.registry_session(str(stack.ca_cert)) as registry:
        for index in range(pushes):
            name = f"bench/pushed-{run}-{index}"
            seed.push_image(registry, stack.registry_url, name, image, ["1.0"])
            pushed = time.perf_counter()
            deadline = pushed + 30
            while time.perf_counter() < deadline:
                found = http.get(f"{berth.base_url}/api/v1/repositories", params={"q": name}, auth=DAVE, timeout=10)
                if found.ok and found.json()["repositories"] == [name]:
                    break
                time.sleep(0.01)
            latencies.append(time.perf_counter() - pushed)
    return {
        "pushes": pushes,
        "visible_max_s": round(max(latencies), 3),
        "visible_median_s": round(statistics.median(latencies), 3),
    }


def _envelope(run: str, index: int, repositories: list[str]) -> bytes:
    repository, tag, action = repositories[index % len(repositories)], "latest", "pull"
    if index % 100 == 0:
        repository, tag, action = f"bench/evnew-{run}-{index}", "1", "push"
    elif index % 10 >= 8:
        tag, action = f"ev-{index}", "push"
    event = {
        "id": f"bench-{run}-{index}",
        "timestamp": datetime.now(UTC).isoformat(),
        "action": action,
        "target": {"mediaType": MANIFEST, "size": 526, "digest": DIGEST, "length": 526, "repository": repository,
                   "tag": tag},
        "request": {"id": uuid.uuid4().hex, "addr": "127.0.0.1:1", "method": "PUT", "useragent": "bench"},
        "actor": {"name": "bench"},
        "source": {"addr": "bench:5000", "instanceID": run},
    }  # fmt: skip
    return json.dumps({"events": [event]}).encode()


def event_load(berth: BerthServer, repositories: list[str], rate: int, seconds: int, threads: int = 32) -> dict:
    """(b): ``rate`` envelopes a second for ``seconds`` (bounded), then count them back in SQLite."""
    run, total = uuid.uuid4().hex[:8], rate * seconds
    lock, next_index, results = threading.Lock(), [0], []
    started = time.perf_counter() + 0.2
    headers = {"Authorization": f"Bearer {SECRET}", "Content-Type": MEDIA_TYPE}

    def sender() -> None:
        with requests.Session() as session:
            session.trust_env = False
            while True:
                with lock:
                    index = next_index[0]
                    next_index[0] += 1
                if index >= total or time.perf_counter() > started + seconds + 30:
                    return
                delay = started + index / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                body = _envelope(run, index, repositories)
                sent = time.perf_counter()
                try:
                    status = session.post(
                        f"{berth.base_url}/api/v1/events", data=body, headers=headers, timeout=30
                    ).status_code
                except requests.RequestException:
                    status = 0
                results.append((status, time.perf_counter() - sent))

    with ThreadPoolExecutor(threads) as pool:
        for _ in range(threads):
            pool.submit(sender)
    elapsed = time.perf_counter() - started
    with sqlite3.connect(berth.data_dir / "berth.sqlite3") as db:
        stored = db.execute("SELECT COUNT(*) FROM registry_events WHERE id LIKE ?", (f"bench-{run}-%",)).fetchone()[0]
        distinct = db.execute(
            "SELECT COUNT(DISTINCT id) FROM registry_events WHERE id LIKE ?", (f"bench-{run}-%",)
        ).fetchone()[0]
    ok = sum(1 for status, _ in results if status == 200)
    return {
        "sent": len(results),
        "ok": ok,
        "errors": len(results) - ok,
        "stored": stored,
        "lost": ok - stored,
        "duplicates": stored - distinct,
        "achieved_rate": round(len(results) / elapsed, 1),
        "p50_ms": round(percentile([t for _, t in results], 0.5) * 1000, 1),
        "p95_ms": round(percentile([t for _, t in results], 0.95) * 1000, 1),
        "max_ms": round(max((t for _, t in results), default=0) * 1000, 1),
    }


def run(args: argparse.Namespace) -> dict:
    """Every measurement of one run."""
    dataset = ensure_dataset(args.data_dir, small=args.repositories)
    work = PROJECT / ".bench-stack-events"
    berth = BerthServer({}, work / "berth-data", work / "berth.log", clean_env=True)
    report: dict = {"loadavg_before": os.getloadavg()}
    with bench_stack(
        dataset.storage_root, state_dir=work / "stack", registry_yaml=notifications(berth.base_url)
    ) as stack:
        berth.env.update(stack.env)
        berth.env.update(BERTH_EVENTS_SECRET=SECRET, BERTH_CACHE_TTL="600", BERTH_BACKGROUND="false")
        berth.env["BERTH_DATA_DIR"] = str(berth.data_dir)  # the stack names its own; Berth keeps the one it wipes
        berth.start(timeout=60)
        try:
            with requests.Session() as http:
                http.trust_env = False
                report["catalog"] = catalog_and_search(http, berth, stack)
                report["push"] = push_visibility(http, berth, stack)
                repositories = small_repository_names(args.repositories)
                report["events"] = event_load(berth, repositories, args.rate, args.seconds)
                report["push_after_load"] = push_visibility(http, berth, stack, pushes=2)
            report["memory"] = berth.memory()
        finally:
            berth.stop()
    report["loadavg_after"] = os.getloadavg()
    return report


def ratio_lines(report: dict) -> list[str]:
    """One ``RATIO`` line per target."""
    catalog, push, events, memory = report["catalog"], report["push"], report["events"], report["memory"]
    return [
        f"RATIO catalog_{catalog['repositories']} berth_cold/floor={catalog['cold_over_floor']} (target <= 1.3; "
        f"floor {catalog['floor_s']} s, berth {catalog['berth_cold_s']} s)",
        f"RATIO warm_search p95={catalog['search_p95_ms']} ms (target < 50)",
        f"RATIO push_visible max={push['visible_max_s']} s median={push['visible_median_s']} s (target <= 1.0)",
        f"RATIO events rate={events['achieved_rate']}/s sent={events['sent']} errors={events['errors']} "
        f"lost={events['lost']} duplicates={events['duplicates']} p95={events['p95_ms']} ms (target: 0 errors, 0 lost)",
        f"RATIO memory max_worker={memory.get('max_worker_mib')} MiB sum={memory.get('sum_mib')} MiB",
        f"RATIO loadavg before={report['loadavg_before'][0]:.2f} after={report['loadavg_after'][0]:.2f}",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the events benchmark once and print its RATIO lines."""
    parser = argparse.ArgumentParser(prog="python -m bench.events", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path(".bench-data-100k"))
    parser.add_argument("--repositories", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args(argv)
    report = run(args)
    print(json.dumps(report, indent=2))
    for line in ratio_lines(report):
        print(line)
    print(f"results: {write_json('events', report)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
