"""Load benchmark: 50 logged-in clients over a realistic mix of pages, Berth under gunicorn as deployed.

Run with ``.venv/bin/python -m bench.load``. It reuses the catalog benchmark's dataset
(10,000 repositories and ``bench/big`` with 3,000 tags, :mod:`bench.dataset`) and stack
(devstack for slapd, a registry serving the dataset, :mod:`bench.stack`), and starts Berth
as the README deploys it: ``gunicorn --config gunicorn.conf.py app:app`` (default workers
and threads) with a fresh, empty ``BERTH_DATA_DIR``.

50 clients log in through the login form (35 as ``dave``, developer; 10 as ``olivia``,
ops; 5 as ``alice``, admin), one cookie jar each. After one untimed pass over every page
the mix uses (caches warm), each client loops for 60 s, choosing by weight:

- 35 % catalog search ``/repositories?q=<substring of a real name>``, half of them as the
  htmx fragment (``HX-Request: true``);
- 25 % repository page ``/repositories/<repo>``: 23 % a small repository, 2 % ``bench/big``
  (3,000 tags, reported on its own row);
- 20 % tag detail ``/repositories/<repo>/tags/<tag>``;
- 10 % ``/health`` (ops and admin clients; developers, who may not see it, load ``/``);
- 10 % ``/api/v1/status`` with HTTP Basic ``olivia`` (a monitoring script: no cookie).

The repositories, tags and queries are drawn from the dataset with a seeded RNG. The first
phase is a closed loop (no think time: the stress test the target applies to); the second
(``--think 0.5``) waits 0.5 s after each answer, a realistic load. It prints per route
requests, req/s, p50/p95/p99/max and errors (non-200 or exceptions, timeouts included),
the CPU split, Berth's peak memory and the load average, then
``RESULT load p95_max_ms=<worst route p95> errors=<n> target_p95_ms=250`` (closed loop) and
``RESULT load_think ...`` (think time), and writes ``bench/results/load.json``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import re
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import requests

from bench.common import BenchError, save_report, timed
from bench.dataset import BIG_REPOSITORY, DEFAULT_DATA_DIR, Dataset, ensure_dataset, small_repository_names
from bench.dataset import verify_registry as verify_dataset
from bench.health import (
    REQUEST_TIMEOUT,
    MeasuredBerthServer,
    Sample,
    drive,
    format_summary,
    login,
    new_session,
    per_second,
    summarize,
)
from bench.stack import PROJECT, BenchStack, bench_stack

DEFAULT_STATE_DIR = PROJECT / ".bench-stack-load"
SEED = 20240612
USERS = (("dave", "dave-pw", 35), ("olivia", "olivia-pw", 10), ("alice", "alice-pw", 5))
DEVELOPERS = frozenset({"dave"})
API_USER = ("olivia", "olivia-pw")
DURATION = 60.0
THINK = 0.5
TARGET_P95_MS = 250.0
THINK_TARGET_P95_MS = 500.0  # issue 16: with think time (and beside a CPU hog), p95 under 500 ms, no timeouts
MAX_REQUESTS_PER_CLIENT = 1_000_000
REPOSITORIES = 200  # small repositories the mix visits (pages and tags)
BIG_TAGS = 60  # tags of bench/big the tag-detail pages visit
QUERIES = 100  # distinct search queries

# route -> (weight in %, row label)
MIX = {
    "search_page": (17.5, "GET /repositories?q= (page)"),
    "search_fragment": (17.5, "GET /repositories?q= (htmx)"),
    "repository": (23.0, "GET /repositories/<repo>"),
    "repository_big": (2.0, "GET /repositories/bench/big"),
    "tag": (20.0, "GET /repositories/<repo>/tags/<tag>"),
    "health": (10.0, "GET /health (ops, admin)"),
    "overview": (0.0, "GET / (developers)"),  # developers' share of the 10 % health slot
    "status_api": (10.0, "GET /api/v1/status (Basic)"),
}
ROUTES = list(MIX)
LABELS = {route: label for route, (_, label) in MIX.items()}


# --- the workload: what the clients ask for, drawn from the dataset ----------------------------


@dataclass(frozen=True)
class Workload:
    """The repositories, tags and queries the clients pick from."""

    repositories: list[str]
    tags: list[tuple[str, str]]
    queries: list[str]


def dataset_tags(storage_root: Path, repo: str) -> list[str]:
    """The tags of ``repo``, read from the storage layout (``_manifests/tags/<tag>``)."""
    tags_dir = storage_root / "docker" / "registry" / "v2" / "repositories" / repo / "_manifests" / "tags"
    try:
        return sorted(entry.name for entry in tags_dir.iterdir())
    except OSError as exc:
        raise BenchError(f"dataset has no tags for {repo}: {exc}") from exc


def make_workload(dataset: Dataset, seed: int = SEED) -> Workload:
    """Pick ``REPOSITORIES`` small repositories (all their tags), ``BIG_TAGS`` tags of bench/big and
    ``QUERIES`` search queries (a substring of 3 to 8 characters of a real name), all seeded."""
    rng = random.Random(seed)
    names = small_repository_names()
    repositories = sorted(rng.sample(names, REPOSITORIES))
    tags = [(repo, tag) for repo in repositories for tag in dataset_tags(dataset.storage_root, repo)]
    big_tags = dataset_tags(dataset.storage_root, BIG_REPOSITORY)
    tags += [(BIG_REPOSITORY, tag) for tag in sorted(rng.sample(big_tags, BIG_TAGS))]
    queries: list[str] = []
    while len(queries) < QUERIES:
        name = rng.choice(names)
        length = rng.randint(3, 8)
        offset = rng.randrange(len(name) - length + 1)
        query = name[offset : offset + length].strip("/")
        if query and query not in queries:
            queries.append(query)
    return Workload(repositories, tags, queries)


@dataclass(frozen=True)
class Request:
    """One request of the mix: its route (row), path, query parameters, headers, and whether it is the API."""

    route: str
    path: str
    params: dict[str, str] | None = None
    headers: dict[str, str] | None = None
    api: bool = False


def choose(rng: random.Random, workload: Workload, developer: bool) -> Request:
    """Draw the next request of the mix."""
    route = rng.choices(ROUTES, weights=[weight for weight, _ in MIX.values()])[0]
    if route in ("search_page", "search_fragment"):
        headers = {"HX-Request": "true"} if route == "search_fragment" else None
        return Request(route, "/repositories", {"q": rng.choice(workload.queries)}, headers)
    if route == "repository":
        return Request(route, f"/repositories/{rng.choice(workload.repositories)}")
    if route == "repository_big":
        return Request(route, f"/repositories/{BIG_REPOSITORY}")
    if route == "tag":
        repo, tag = rng.choice(workload.tags)
        return Request(route, f"/repositories/{repo}/tags/{tag}")
    if route == "health":
        return Request("overview", "/") if developer else Request(route, "/health")
    return Request(route, "/api/v1/status", api=True)


def every_request(workload: Workload) -> list[Request]:
    """Each distinct request the mix can make (for the warm-up pass)."""
    found = [Request("search_page", "/repositories", {"q": query}) for query in workload.queries]
    found += [Request("repository", f"/repositories/{repo}") for repo in workload.repositories]
    found.append(Request("repository_big", f"/repositories/{BIG_REPOSITORY}"))
    found += [Request("tag", f"/repositories/{repo}/tags/{tag}") for repo, tag in workload.tags]
    found += [Request("health", "/health"), Request("overview", "/"), Request("status_api", "/api/v1/status", api=True)]
    return found


# --- clients ----------------------------------------------------------------------------------


@dataclass
class Client:
    """One logged-in user: the cookie session for pages, a cookie-less session for the API."""

    username: str
    pages: requests.Session
    api: requests.Session

    def get(self, base: str, request: Request, timeout: float = REQUEST_TIMEOUT) -> requests.Response:
        """Send ``request``: pages with the cookie, the API with HTTP Basic."""
        session = self.api if request.api else self.pages
        return session.get(
            base + request.path,
            params=request.params,
            headers=request.headers,
            auth=API_USER if request.api else None,
            timeout=timeout,
            allow_redirects=False,
        )

    def close(self) -> None:
        """Close both sessions."""
        self.pages.close()
        self.api.close()


def log_in_clients(base: str) -> list[Client]:
    """Log in every client of ``USERS`` through the form (developers check ``/``, the others ``/health``)."""
    clients = []
    for username, password, count in USERS:
        check = "/" if username in DEVELOPERS else "/health"
        clients += [Client(username, login(base, username, password, check), new_session()) for _ in range(count)]
    return clients


def warm_up(base: str, clients: list[Client], workload: Workload) -> dict:
    """Request every page of the mix once (8 at a time), so the timed phases meet warm caches."""
    admin = next(client for client in clients if client.username not in DEVELOPERS)
    todo = every_request(workload)

    def fetch(request: Request) -> int:
        try:
            return admin.get(base, request, timeout=120).status_code
        except requests.RequestException:
            return 0

    with ThreadPoolExecutor(8) as pool, timed() as elapsed:
        statuses = list(pool.map(fetch, todo))
    failed = [f"{r.path} {r.params or ''}: {s}" for r, s in zip(todo, statuses, strict=True) if s != 200]
    if failed:
        raise BenchError(f"warm-up: {len(failed)} of {len(todo)} requests failed, e.g. {failed[:3]}")
    return {"requests": len(todo), "seconds": round(elapsed[0], 1)}


def error_kind(exc: requests.RequestException) -> str:
    """The exception's class and, for a connection error, why (e.g. a keep-alive connection the server closed)."""
    text = str(exc)
    for reason in ("RemoteDisconnected", "ConnectionResetError", "BrokenPipeError", "ConnectionRefusedError"):
        if reason in text:
            return f"{type(exc).__name__} ({reason})"
    return type(exc).__name__


def client_loop(
    client: Client,
    base: str,
    workload: Workload,
    seed: int,
    start: float,
    end: float,
    think: float,
    out: list[Sample],
) -> None:
    """Loop until ``end``: draw a request, time it, wait ``think`` seconds."""
    rng = random.Random(seed)
    developer = client.username in DEVELOPERS
    for _ in range(MAX_REQUESTS_PER_CLIENT):
        began = time.perf_counter()
        if began >= end:
            return
        request = choose(rng, workload, developer)
        try:
            response = client.get(base, request)
            response.content  # noqa: B018 - the whole body is part of the latency
            status, error = response.status_code, None
        except requests.RequestException as exc:
            status, error = 0, error_kind(exc)
        out.append(Sample(request.route, began - start, (time.perf_counter() - began) * 1000, status, error=error))
        if think:
            time.sleep(min(think, max(0.0, end - time.perf_counter())))


def pressure() -> dict[str, float]:
    """Seconds so far that some / all tasks stalled on CPU and I/O (``/proc/pressure``, PSI); {} without PSI."""
    found: dict[str, float] = {}
    for resource in ("cpu", "io"):
        try:
            lines = Path(f"/proc/pressure/{resource}").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            kind, *fields = line.split()
            found[f"{resource}_{kind}_s"] = int(dict(f.split("=") for f in fields)["total"]) / 1e6
    return found


def stack_cpu_seconds(state_dir: Path, only: str = "") -> float:
    """CPU time so far of the stack's processes (registries, slapd): those whose command line names ``state_dir``
    (and ``only``, e.g. the bench registry's config directory)."""
    mark = f"{state_dir}/{only}".rstrip("/").encode()
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError, IndexError, ValueError):
                if mark in (entry / "cmdline").read_bytes():
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def watch_stalls(base: str, registry: str, ca_cert: Path, stop: threading.Event, out: list[dict]) -> None:
    """Every 0.5 s: how long Berth's ``/healthz`` (no login, no database) and the registry's ``/v2/`` take.

    A slow ``/healthz`` means every gunicorn thread was busy or the worker was frozen; a
    slow ``/v2/`` means the registry (or the whole machine) was.
    """
    with new_session() as berth, new_session() as upstream:
        upstream.verify = str(ca_cert)
        started = time.perf_counter()
        while not stop.wait(0.5):
            entry: dict[str, float | str] = {"t": round(time.perf_counter() - started, 1)}
            for name, session, url in (
                ("healthz_ms", berth, f"{base}/healthz"),
                ("v2_ms", upstream, f"{registry}/v2/"),
            ):
                began = time.perf_counter()
                try:
                    session.get(url, timeout=REQUEST_TIMEOUT).content  # noqa: B018
                    entry[name] = round((time.perf_counter() - began) * 1000, 1)
                except requests.RequestException as exc:
                    entry[name] = type(exc).__name__
            out.append(entry)


def _stall_summary(watched: list[dict]) -> dict:
    """Worst and median ``/healthz`` and ``/v2/`` times, and when they passed 1 s."""
    summary: dict[str, object] = {}
    for name in ("healthz_ms", "v2_ms"):
        times = sorted(e[name] for e in watched if isinstance(e.get(name), float))
        failed = [e["t"] for e in watched if not isinstance(e.get(name), float)]
        slow = [e["t"] for e in watched if not isinstance(e.get(name), float) or e[name] > 1000]
        summary[name] = {
            "probes": len(watched),
            "median": times[len(times) // 2] if times else None,
            "max": times[-1] if times else None,
            "over_1s_at": slow,
            "failed": len(failed),
        }
    return summary


REQUEST_KINDS = (
    ("catalog", re.compile(r'"GET /v2/_catalog')),
    ("tags_list", re.compile(r'"GET /v2/\S+/tags/list')),
    ("manifest_head", re.compile(r'"HEAD /v2/\S+/manifests/')),
    ("manifest_get", re.compile(r'"GET /v2/\S+/manifests/')),
    ("blob_get", re.compile(r'"GET /v2/\S+/blobs/')),
    ("ping", re.compile(r'"GET /v2/ ')),
)


MINUTE = re.compile(r"\[\d+/\w+/\d+:(\d\d:\d\d):\d\d ")


def registry_requests(stack: BenchStack, offset: int, seconds: float) -> dict[str, object] | None:
    """Registry requests per minute by kind since ``offset`` of its access log; None when the log is off."""
    if not stack.access_log:
        return None
    with open(stack.registry_log, "rb") as log:
        log.seek(offset)
        lines = log.read().decode(errors="replace").splitlines()
    counts = dict.fromkeys([kind for kind, _ in REQUEST_KINDS], 0)
    minutes: dict[str, int] = {}  # wall-clock minute -> requests, to see the steady state
    for line in lines:
        kind = next((k for k, pattern in REQUEST_KINDS if pattern.search(line)), None)
        if kind:
            counts[kind] += 1
            if stamp := MINUTE.search(line):
                minutes[stamp.group(1)] = minutes.get(stamp.group(1), 0) + 1
    per_minute: dict[str, object] = {kind: round(count * 60 / seconds, 1) for kind, count in counts.items()}
    return per_minute | {"all": round(sum(counts.values()) * 60 / seconds, 1), "by_minute": minutes}


def _spin(until: float) -> None:
    while time.monotonic() < until:
        sum(range(10_000))


@contextmanager
def cpu_hog(seconds: float, processes: int) -> Iterator[None]:
    """``processes`` busy loops (a noisy neighbour), each ending by itself after ``seconds`` at most."""
    if not processes:
        yield
        return
    context = multiprocessing.get_context("spawn")
    hogs = [context.Process(target=_spin, args=(time.monotonic() + seconds,), daemon=True) for _ in range(processes)]
    for hog in hogs:
        hog.start()
    try:
        yield
    finally:
        for hog in hogs:
            hog.terminate()
            hog.join(5)


def phase(
    server: MeasuredBerthServer,
    stack: BenchStack,
    clients: list[Client],
    workload: Workload,
    duration: float,
    think: float,
    hog: int = 0,
) -> dict:
    """Run every client for ``duration`` seconds with ``think`` seconds between requests (and ``hog``
    busy processes beside them); summarize."""
    samples: list[list[Sample]] = [[] for _ in clients]
    loadavg_start = os.getloadavg()
    start = time.perf_counter()
    end = start + duration
    seed = SEED + int(think * 1000)
    loops = [
        partial(client_loop, client, server.base_url, workload, seed * 100 + i, start, end, think, samples[i])
        for i, client in enumerate(clients)
    ]
    watched: list[dict] = []
    stop = threading.Event()
    args = (server.base_url, stack.registry_url, stack.ca_cert, stop, watched)
    watcher = threading.Thread(target=watch_stalls, args=args, daemon=True)
    psi, stack_cpu = pressure(), stack_cpu_seconds(stack.state_dir)
    registry_cpu = stack_cpu_seconds(stack.state_dir, "bench-registry")
    log_offset = stack.log_offset()
    watcher.start()
    with cpu_hog(duration + 5, hog):
        result = drive(server, loops, duration)
    stop.set()
    cpu = result["cpu"] | {"stack_s": round(stack_cpu_seconds(stack.state_dir) - stack_cpu, 1)}
    cpu["registry_s"] = round(stack_cpu_seconds(stack.state_dir, "bench-registry") - registry_cpu, 1)
    cpu["others_s"] = round(cpu["others_s"] - cpu["stack_s"], 1)
    psi = {key: round(value - psi[key], 1) for key, value in pressure().items() if key in psi}
    watcher.join(REQUEST_TIMEOUT * 2 + 5)
    flat = [sample for group in samples for sample in group]
    summary = summarize(flat, result["seconds"], ROUTES)
    worst = max((r for r in ROUTES if summary[r]["requests"]), key=lambda r: summary[r]["p95_ms"])
    return {
        "think_s": think,
        "seconds": round(result["seconds"], 2),
        "summary": summary,
        "worst_route": worst,
        "p95_max_ms": summary[worst]["p95_ms"],
        "errors": summary["all"]["errors"],
        "per_second": per_second(flat, result["seconds"]),
        "stuck_clients": result["stuck_clients"],
        "cpu": cpu,
        "pressure_s": psi,
        "stalls": _stall_summary(watched),
        "registry_requests_per_minute": registry_requests(stack, log_offset, result["seconds"]),
        "hog_processes": hog,
        "watched": watched,
        "memory": server.memory(),
        "loadavg_start": loadavg_start,
        "loadavg_end": os.getloadavg(),
    }


# --- main ------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict:
    """Start the stack and Berth, log in, warm up, run the phases; stop everything, even on failure."""
    dataset = ensure_dataset(args.data_dir)
    workload = make_workload(dataset)
    report: dict = {
        "clients": {username: count for username, _, count in USERS},
        "duration_s": args.duration,
        "mix_percent": {route: weight for route, (weight, _) in MIX.items()},
        "workload": {"repositories": len(workload.repositories), "tags": len(workload.tags)}
        | {"queries": len(workload.queries), "seed": SEED},
        "loadavg_before": os.getloadavg(),
        "phases": {},
    }
    print(f"dataset: {dataset.repositories} repositories ({'reused' if dataset.reused else 'built'})")
    with bench_stack(dataset.storage_root, args.state_dir, access_log=args.access_log) as stack:
        print(f"registry {stack.registry_url}: {verify_dataset(stack.registry_url, stack.ca_cert, dataset)}")
        logs = stack.state_dir / "logs" / "berth-load.log"
        server = MeasuredBerthServer(stack.env, stack.state_dir / "berth-load", logs)
        try:
            server.start()
            base = server.base_url
            print(f"berth {base}: gunicorn --config gunicorn.conf.py app:app, fresh BERTH_DATA_DIR")
            with timed() as logging_in:
                clients = log_in_clients(base)
            print(f"{len(clients)} clients logged in through the form in {logging_in[0]:.1f} s")
            report["warm_up"] = warm_up(base, clients, workload)
            print(f"warm-up: {report['warm_up']['requests']} requests in {report['warm_up']['seconds']} s")
            plan = [] if args.no_closed else [(0.0, 0)]
            plan += [(args.think, 0)] + ([(args.think, args.hog)] if args.hog else []) if args.think else []
            for think, hog in plan:
                name = ("closed" if not think else f"think_{think:g}s") + (f"_hog{hog}" if hog else "")
                print(f"phase {name}: {len(clients)} clients, {args.duration:g} s, think {think:g} s, hog {hog} ...")
                report["phases"][name] = phase(server, stack, clients, workload, args.duration, think, hog)
            for client in clients:
                client.close()
            report["workers"] = next(iter(report["phases"].values()))["memory"].get("workers")
        finally:
            server.stop()
    return report


def print_phase(name: str, result: dict, clients: int) -> None:
    """One phase's table, CPU, memory, load average and RESULT line."""
    summary = result["summary"]
    think = result["think_s"]
    title = "closed loop, no think time" if not think else f"REALISTIC LOAD: {think:g} s think time per client"
    print(f"\n== {name}: {title} ({result['seconds']} s, {clients} clients)")
    shown = {route: row for route, row in summary.items() if row["requests"] or route == "all"}
    print(format_summary(shown, LABELS, hung_column=False))
    cpu, rps = result["cpu"], summary["all"]["rps"]
    print(
        f"{rps} req/s in all; CPU: berth {cpu['berth_s']} s, clients {cpu['clients_s']} s, "
        f"stack (registry, slapd) {cpu['stack_s']} s, other processes {cpu['others_s']} s "
        f"(of {result['seconds'] * (os.cpu_count() or 1):.0f} CPU-s); "
        f"berth CPU per request {1000 * cpu['berth_s'] / max(1, summary['all']['requests']):.2f} ms"
    )
    if not think and rps:
        print(f"closed loop: mean latency = clients / throughput = {clients} / {rps} = {1000 * clients / rps:.0f} ms")
    if result["pressure_s"]:
        print(
            "stall time (PSI, s): "
            + ", ".join(
                f"{key.removesuffix('_s').replace('_', ' ')} {value}" for key, value in result["pressure_s"].items()
            )
        )
    for name, row in result["stalls"].items():
        what = "berth /healthz" if name == "healthz_ms" else "registry /v2/"
        print(
            f"side probe {what} every 0.5 s: median {row['median']} ms, max {row['max']} ms, "
            f"over 1 s or failed at t={row['over_1s_at'] or 'never'}"
        )
    if result.get("registry_requests_per_minute"):
        print(f"registry requests per minute (access log): {result['registry_requests_per_minute']}")
    if cpu["berth_s"]:
        print(f"bench registry CPU {cpu['registry_s']} s = {cpu['registry_s'] / cpu['berth_s']:.1%} of berth's")
    print(f"berth peak memory so far (VmHWM, MiB): {result['memory']}")
    print(
        "load average (1/5/15 min): start "
        + " ".join(f"{x:.2f}" for x in result["loadavg_start"])
        + ", end "
        + " ".join(f"{x:.2f}" for x in result["loadavg_end"])
    )
    slow = sorted(result["per_second"], key=lambda row: -row["p95_ms"])[:3]
    print("slowest seconds (p95 ms): " + ", ".join(f"t={row['second']}s {row['p95_ms']}" for row in slow))
    if result["stuck_clients"]:
        print(f"clients still waiting at the end: {result['stuck_clients']}")
    for route, row in summary.items():
        if row["errors"]:
            print(f"errors on {LABELS.get(route, route)}: {row['errors']} ({', '.join(row['error_kinds'])})")
    worst, p95, errors = result["worst_route"], result["p95_max_ms"], result["errors"]
    target = THINK_TARGET_P95_MS if think else TARGET_P95_MS
    verdict = "PASS" if p95 < target and errors == 0 else "FAIL"
    print(f"target: every route p95 < {target:g} ms and 0 errors: {verdict} (worst: {LABELS[worst]})")
    tag = ("load" if not think else "load_think") + ("_hog" if result.get("hog_processes") else "")
    print(f"RESULT {tag} p95_max_ms={p95:.1f} errors={errors} target_p95_ms={target:g}")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, run, print, and write ``bench/results/load.json``."""
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="dataset cache (.bench-data)")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="stack state (.bench-stack-load)")
    parser.add_argument("--duration", type=float, default=DURATION, help="seconds of each phase (default 60)")
    parser.add_argument("--think", type=float, default=THINK, help="think time of the second phase (0: skip it)")
    parser.add_argument("--access-log", action="store_true", help="count registry requests by kind per minute")
    parser.add_argument("--hog", type=int, default=0, help="also run the think phase beside N busy processes")
    parser.add_argument("--no-closed", action="store_true", help="skip the closed-loop phase")
    args = parser.parse_args(argv)
    if not 0 <= args.hog <= 8:
        parser.error("--hog must be 0..8")
    if not 1 <= args.duration <= 600 or not 0 <= args.think <= 10:
        parser.error("--duration must be 1..600 s and --think 0..10 s")
    started = time.perf_counter()
    report = run(args)
    clients = sum(report["clients"].values())
    for name, result in report["phases"].items():
        print_phase(name, result, clients)
    save_report("load", report, TARGET_P95_MS, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
