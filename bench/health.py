"""Health benchmark: 50 logged-in clients on ``/health`` under gunicorn while the NFS probe hangs.

Run with ``.venv/bin/python -m bench.health``. It starts devstack (slapd, the seeded
registry; no Swarm, so the Swarm panel says the engine is unreachable), then Berth under
gunicorn exactly as deployed (``gunicorn.conf.py``), but with the entry point
``bench.hung_app:app``: Berth as built by ``app:app`` whose NFS probe child blocks in the
kernel forever (:mod:`bench.hung_app`), with ``BERTH_HEALTH_INTERVAL=2``.

It logs in 50 clients as ``olivia`` through the login form (one cookie jar each), waits
until the NFS panel reports the hung mount, then for 20 s every client loops on
``GET /health`` (80 %) and ``GET /health/panels/nfs`` with ``HX-Request: true`` (20 %).
Meanwhile a watcher reads ``/api/v1/status`` (HTTP Basic) and counts the probe children
of the gunicorn workers.

It prints requests/s, p50/p95/p99/max per route, errors (non-200 or exceptions), Berth's
peak memory (VmHWM), the probe children left, the load average, then
``RESULT health p95_ms=... errors=... target_p95_ms=100``, and writes
``bench/results/health.json``.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import requests

import devstack
from bench.common import BenchError, save_report, timed
from bench.stack import PROJECT, BerthServer, children
from devstack.ports import LOOPBACK

DEFAULT_STATE_DIR = PROJECT / ".bench-stack-health"
APP = "bench.hung_app:app"
USER = ("olivia", "olivia-pw")
CLIENTS = 50
DURATION = 20.0
PANEL_SHARE = 0.2
HEALTH_INTERVAL = 2
TARGET_P95_MS = 100.0
REQUEST_TIMEOUT = 10.0
MAX_REQUESTS_PER_CLIENT = 100_000
HUNG_MARK = "not responding"
ROUTES = {"health": "/health", "panel_nfs": "/health/panels/nfs"}
CSRF_INPUT = re.compile(r'name="csrf_token"\s+value="([^"]+)"')


class MeasuredBerthServer(BerthServer):
    """Berth under gunicorn (``gunicorn.conf.py``) with a chosen entry point, its CPU time and leftovers.

    With the default ``app:app`` it runs exactly what :class:`BerthServer` (and the README) runs.
    """

    def __init__(self, env: dict[str, str], data_dir: Path, log: Path, app: str = "app:app") -> None:
        super().__init__(env, data_dir, log, app=app)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the master and its live workers."""
        master = self.master_pid
        if master is None:
            return 0.0
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in [master, *children(master)]:
            with suppress(OSError, IndexError, ValueError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / ticks

    def leftovers(self) -> list[int]:
        """Processes still running this server's command line (``--bind`` with its port): orphans."""
        mark = f"--bind\0{LOOPBACK}:{self.port}\0".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                with suppress(OSError):
                    if mark in (entry / "cmdline").read_bytes():
                        found.append(int(entry.name))
        return found


class HungBerthServer(MeasuredBerthServer):
    """Berth under gunicorn (``gunicorn.conf.py``) with the hung-NFS entry point instead of ``app:app``."""

    def __init__(self, env: dict[str, str], data_dir: Path, log: Path, app: str = APP) -> None:
        super().__init__(env, data_dir, log, app)

    def probechildren(self) -> dict[str, object]:
        """The children of each worker (forked probes, live or zombie): count and states."""
        master = self.master_pid
        if master is None:
            return {"workers": 0, "children": 0, "states": {}}
        workers = children(master)
        states: dict[str, int] = {}
        for worker in workers:
            for child in children(worker):
                with suppress(OSError, IndexError):
                    state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
                    states[state] = states.get(state, 0) + 1
        return {"workers": len(workers), "children": sum(states.values()), "states": states}


# --- clients --------------------------------------------------------------------------------


def new_session() -> requests.Session:
    """A session that ignores the environment's proxies and CA bundle."""
    session = requests.Session()
    session.trust_env = False
    return session


def login(base: str, username: str, password: str, check: str = "/health") -> requests.Session:
    """Log in through the form (GET /login, csrf_token, POST); return the session with its cookie.

    ``check`` is a page the user may see, fetched once to confirm the session works.
    """
    session = new_session()
    page = session.get(f"{base}/login", timeout=REQUEST_TIMEOUT)
    match = CSRF_INPUT.search(page.text)
    if page.status_code != 200 or match is None:
        raise BenchError(f"GET /login: HTTP {page.status_code}, csrf_token {'found' if match else 'missing'}")
    form = {"username": username, "password": password, "csrf_token": match.group(1)}
    answer = session.post(f"{base}/login", data=form, allow_redirects=False, timeout=REQUEST_TIMEOUT)
    if answer.status_code != 303:
        raise BenchError(f"POST /login as {username}: HTTP {answer.status_code} (expected 303)")
    answer = session.get(f"{base}{check}", timeout=REQUEST_TIMEOUT, allow_redirects=False)
    if answer.status_code != 200:
        raise BenchError(f"GET {check} after login as {username}: HTTP {answer.status_code}")
    return session


def nfs_status(base: str) -> dict:
    """The ``nfs`` part of ``/api/v1/status`` (HTTP Basic as olivia)."""
    with new_session() as session:
        response = session.get(f"{base}/api/v1/status", auth=USER, timeout=REQUEST_TIMEOUT)
    if response.status_code != 200:
        raise BenchError(f"GET /api/v1/status: HTTP {response.status_code}")
    return response.json()["nfs"]


def hung_finding(nfs: dict) -> str | None:
    """The critical 'not responding' finding of the NFS report, if it is there."""
    for finding in nfs.get("findings") or []:
        if finding.get("level") == "critical" and HUNG_MARK in finding.get("message", ""):
            return finding["message"]
    return None


def wait_for_hung_report(base: str, timeout: float) -> dict:
    """Poll ``/api/v1/status`` until the NFS part reports the hung mount; return it."""
    deadline = time.monotonic() + timeout
    nfs: dict = {}
    while time.monotonic() < deadline:
        nfs = nfs_status(base)
        if hung_finding(nfs):
            return nfs
        time.sleep(0.5)
    raise BenchError(f"the NFS panel never reported '{HUNG_MARK}' in {timeout:.0f}s: {nfs.get('findings')}")


@dataclass
class Sample:
    """One request: route, when it started (s into the run), latency (ms), status (0: exception)."""

    route: str
    started: float
    ms: float
    status: int
    hung_shown: bool = False
    error: str | None = None


def client_loop(
    session: requests.Session, base: str, seed: int, start: float, end: float, panel_share: float, out: list[Sample]
) -> None:
    """Loop until ``end`` (bounded by MAX_REQUESTS_PER_CLIENT): /health or the NFS panel, timing each."""
    chooser = random.Random(seed)
    for _ in range(MAX_REQUESTS_PER_CLIENT):
        began = time.perf_counter()
        if began >= end:
            return
        route = "panel_nfs" if chooser.random() < panel_share else "health"
        headers = {"HX-Request": "true"} if route == "panel_nfs" else {}
        try:
            response = session.get(
                base + ROUTES[route], headers=headers, timeout=REQUEST_TIMEOUT, allow_redirects=False
            )
            ms = (time.perf_counter() - began) * 1000
            out.append(Sample(route, began - start, ms, response.status_code, HUNG_MARK in response.text))
        except requests.RequestException as exc:
            ms = (time.perf_counter() - began) * 1000
            out.append(Sample(route, began - start, ms, 0, error=type(exc).__name__))


def watch(server: HungBerthServer, base: str, stop: threading.Event, out: list[dict]) -> None:
    """Every 2 s during the run: the NFS report's error and the probe children of the workers."""
    while not stop.wait(2.0):
        entry: dict[str, object] = {"at": time.strftime("%H:%M:%S")}
        try:
            nfs = nfs_status(base)
            entry |= {"nfs_error": nfs.get("error"), "age_seconds": nfs.get("age_seconds")}
            entry["hung_finding"] = hung_finding(nfs) is not None
        except (BenchError, requests.RequestException, ValueError) as exc:
            entry["status_error"] = str(exc)
        entry |= server.probechildren()
        out.append(entry)


# --- statistics -------------------------------------------------------------------------------


def percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not ordered:
        return 0.0
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summarize(samples: list[Sample], seconds: float, routes: Iterable[str] = ROUTES) -> dict[str, dict]:
    """Per route (in the order of ``routes``) and for all: requests, req/s, p50/p95/p99/max (ms), errors, hung shown."""
    groups = {"all": samples} | {route: [s for s in samples if s.route == route] for route in routes}
    summary = {}
    for name, group in groups.items():
        ordered = sorted(s.ms for s in group)
        errors = [s for s in group if s.status != 200]
        summary[name] = {
            "requests": len(group),
            "rps": round(len(group) / seconds, 1) if seconds else 0.0,
            "p50_ms": round(percentile(ordered, 50), 1),
            "p95_ms": round(percentile(ordered, 95), 1),
            "p99_ms": round(percentile(ordered, 99), 1),
            "max_ms": round(ordered[-1], 1) if ordered else 0.0,
            "errors": len(errors),
            "error_kinds": sorted({s.error or f"HTTP {s.status}" for s in errors}),
            "hung_shown": sum(1 for s in group if s.hung_shown),
        }
    return summary


def per_second(samples: list[Sample], seconds: float) -> list[dict]:
    """Requests and p95 for each second of the run (to see stalls, e.g. during a probe cycle)."""
    rows = []
    for second in range(math.ceil(seconds)):
        ordered = sorted(s.ms for s in samples if second <= s.started < second + 1)
        rows.append({"second": second, "requests": len(ordered), "p95_ms": round(percentile(ordered, 95), 1)})
    return rows


def format_summary(summary: dict[str, dict], labels: dict[str, str] = ROUTES, hung_column: bool = True) -> str:
    """The per-route table; ``labels`` names each route's row (the row ``all`` is labelled ``all``)."""
    width = max(22, *(len(label) for label in labels.values()))
    header = (
        f"{'route':<{width}} {'requests':>8} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'errors':>6}" + ("  hung shown" if hung_column else "")
    )
    lines = [header, "-" * len(header)]
    for name, row in summary.items():
        label = labels.get(name, "all")
        lines.append(
            f"{label:<{width}} {row['requests']:>8} {row['rps']:>7.1f} {row['p50_ms']:>8.1f} {row['p95_ms']:>8.1f} "
            f"{row['p99_ms']:>8.1f} {row['max_ms']:>8.1f} {row['errors']:>6}"
            + (f"  {row['hung_shown']}" if hung_column else "")
        )
    return "\n".join(lines)


# --- main -----------------------------------------------------------------------------------


def _machine_busy() -> float:
    """CPU-seconds the whole machine has been busy (all but idle and iowait), from ``/proc/stat``."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    """CPU time (user + system) of this process: the 50 clients and the watcher."""
    times = os.times()
    return times.user + times.system


def drive(server: MeasuredBerthServer, loops: Sequence[Callable[[], None]], duration: float) -> dict:
    """Run every client loop on its own thread until they return; measure the time and the CPU split.

    Returns ``seconds`` (wall time), ``stuck_clients`` (threads still running after
    ``duration`` + the request timeout) and ``cpu``: seconds of Berth (master and workers),
    of this process (the clients) and of everything else on the machine.
    """
    threads = [threading.Thread(target=loop, daemon=True) for loop in loops]
    server_cpu, client_cpu, busy = server.cpu_seconds(), _own_cpu(), _machine_busy()
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, start + duration + REQUEST_TIMEOUT + 5 - time.perf_counter()))
    elapsed = time.perf_counter() - start
    cpu = {"berth_s": round(server.cpu_seconds() - server_cpu, 1), "clients_s": round(_own_cpu() - client_cpu, 1)}
    cpu["others_s"] = round(_machine_busy() - busy - cpu["berth_s"] - cpu["clients_s"], 1)
    return {"seconds": elapsed, "stuck_clients": sum(t.is_alive() for t in threads), "cpu": cpu}


def load(server: HungBerthServer, sessions: list[requests.Session], args: argparse.Namespace) -> dict:
    """Run the clients for ``args.duration`` seconds with the watcher beside them."""
    samples: list[list[Sample]] = [[] for _ in sessions]
    watched: list[dict] = []
    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(server, server.base_url, stop, watched), daemon=True)
    start = time.perf_counter()
    end = start + args.duration
    loops = [
        partial(client_loop, session, server.base_url, index, start, end, args.panel_share, samples[index])
        for index, session in enumerate(sessions)
    ]
    watcher.start()
    result = drive(server, loops, args.duration)
    stop.set()
    watcher.join(REQUEST_TIMEOUT + 5)
    return result | {"samples": [sample for group in samples for sample in group], "watched": watched}


def _kill_leftovers(server: HungBerthServer) -> list[dict]:
    """After gunicorn stopped: find processes forked from it that are still there, note and kill them.

    A probe child that was waiting on the hung mount when its worker exited is never
    killed by Berth (only a deadline in the live worker kills it) and lives on under init.
    """
    time.sleep(0.5)
    found = []
    for pid in server.leftovers():
        with suppress(OSError, IndexError):
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            wchan = Path(f"/proc/{pid}/wchan").read_text().strip()
            found.append({"pid": pid, "state": stat[0], "ppid": int(stat[1]), "wchan": wchan})
            os.kill(pid, signal.SIGKILL)
    return found


def run(args: argparse.Namespace) -> dict:
    """Start devstack and the hung Berth, log in, load ``/health``, measure; stop everything."""
    state_dir = Path(args.state_dir).resolve()
    report: dict = {
        "app": args.app,
        "clients": args.clients,
        "duration_s": args.duration,
        "panel_share": args.panel_share,
    }
    report["loadavg_before"] = os.getloadavg()
    server: HungBerthServer | None = None
    try:
        with timed() as up:
            env = devstack.up(state_dir)
        print(f"devstack up in {up[0]:.1f} s (state {state_dir})")
        env = env | {"BERTH_HEALTH_INTERVAL": str(args.interval)}
        if args.workers:
            env["BERTH_WORKERS"] = str(args.workers)
        if args.threads:
            env["BERTH_THREADS"] = str(args.threads)
        logs = state_dir / "logs" / "berth-health.log"
        server = HungBerthServer(env, state_dir / "berth-health", logs, args.app)
        server.start()
        base = server.base_url
        print(f"berth {base} ({args.app}, BERTH_HEALTH_INTERVAL={args.interval})")
        with timed() as hung:
            nfs = wait_for_hung_report(base, 60.0) if args.app == APP else nfs_status(base)
        print(f"NFS report after {hung[0]:.1f} s: {hung_finding(nfs) or nfs.get('error') or 'no error'}")
        report["nfs_before"] = {"error": nfs.get("error"), "finding": hung_finding(nfs)}
        with timed() as logging_in:
            sessions = [login(base, *USER) for _ in range(args.clients)]
        print(f"{len(sessions)} clients logged in as {USER[0]} in {logging_in[0]:.1f} s")
        report["children_before"] = server.probechildren()
        report["loadavg_start"] = os.getloadavg()
        result = load(server, sessions, args)
        report["loadavg_end"] = os.getloadavg()
        for session in sessions:
            session.close()
        nfs = nfs_status(base)
        report["nfs_after"] = {"error": nfs.get("error"), "finding": hung_finding(nfs)}
        time.sleep(0.2)
        report["children_after"] = server.probechildren()
        report["memory"] = server.memory()
        report["summary"] = summarize(result["samples"], result["seconds"])
        report["per_second"] = per_second(result["samples"], result["seconds"])
        report["watched"] = result["watched"]
        report["stuck_clients"] = result["stuck_clients"]
        report["seconds"] = round(result["seconds"], 2)
        report["cpu"] = result["cpu"]
        report["config"] = {"workers": report["memory"].get("workers"), "threads": args.threads or "conf (8)"}
    finally:
        if server is not None:
            server.stop()
            report["orphans_after_stop"] = _kill_leftovers(server)
        devstack.down(state_dir)
    return report


def print_report(report: dict) -> None:
    """The table, the checks and the RESULT line."""
    summary = report["summary"]
    print()
    print(format_summary(summary))
    print()
    print(f"run: {report['seconds']} s, {report['clients']} clients, {summary['all']['rps']} req/s in all")
    cpu = report["cpu"]
    print(
        f"CPU during the run: berth {cpu['berth_s']} s, clients {cpu['clients_s']} s, "
        f"other processes {cpu['others_s']} s "
        f"(of {report['seconds'] * (os.cpu_count() or 1):.0f} CPU-s available); "
        f"berth CPU per request {1000 * cpu['berth_s'] / max(1, summary['all']['requests']):.2f} ms"
    )
    rps = summary["all"]["rps"]
    if rps:
        print(
            f"closed loop, no think time: mean latency = clients / throughput = {report['clients']} / {rps} "
            f"= {1000 * report['clients'] / rps:.0f} ms; the p95 follows the throughput the CPUs allow"
        )
    print(f"NFS finding during the run: {report['nfs_before']['finding']}")
    watched = report["watched"]
    shown = sum(1 for entry in watched if entry.get("hung_finding"))
    print(f"watcher: hung finding in {shown}/{len(watched)} status reads; probe children per read: ", end="")
    print(", ".join(str(entry.get("children")) for entry in watched))
    print(f"probe children of the workers at the end: {report['children_after']}")
    print(f"left after gunicorn stopped (killed by the bench): {report.get('orphans_after_stop')}")
    print(f"berth peak memory (VmHWM, MiB): {report['memory']}")
    print(
        "load average (1/5/15 min): before "
        + " ".join(f"{x:.2f}" for x in report["loadavg_before"])
        + ", at start "
        + " ".join(f"{x:.2f}" for x in report["loadavg_start"])
        + ", at end "
        + " ".join(f"{x:.2f}" for x in report["loadavg_end"])
        + f" ({os.cpu_count()} CPUs)"
    )
    slow = sorted(report["per_second"], key=lambda row: -row["p95_ms"])[:3]
    print("slowest seconds (p95 ms): " + ", ".join(f"t={row['second']}s {row['p95_ms']}" for row in slow))
    p95, errors = summary["all"]["p95_ms"], summary["all"]["errors"]
    verdict = "PASS" if p95 < TARGET_P95_MS and errors == 0 else "FAIL"
    print(f"target: p95 < {TARGET_P95_MS:g} ms and 0 errors: {verdict}")
    print(f"RESULT health p95_ms={p95:.1f} errors={errors} target_p95_ms={TARGET_P95_MS:g}")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, run, print, and write ``bench/results/health.json``."""
    parser = argparse.ArgumentParser(prog="python -m bench.health", description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="devstack state")
    parser.add_argument("--clients", type=int, default=CLIENTS, choices=range(1, 201), metavar="N")
    parser.add_argument("--duration", type=float, default=DURATION, help="seconds of load (default 20)")
    parser.add_argument("--panel-share", type=float, default=PANEL_SHARE, help="share of NFS panel requests")
    parser.add_argument("--interval", type=float, default=HEALTH_INTERVAL, help="BERTH_HEALTH_INTERVAL")
    parser.add_argument("--app", default=APP, help=f"gunicorn entry point (default {APP}; app:app as a control)")
    parser.add_argument("--workers", type=int, default=0, help="BERTH_WORKERS (default: gunicorn.conf.py's)")
    parser.add_argument("--threads", type=int, default=0, help="BERTH_THREADS (default: gunicorn.conf.py's)")
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 120 or not 0 <= args.panel_share <= 1:
        parser.error("--duration must be 1..120 s and --panel-share 0..1")
    started = time.perf_counter()
    report = run(args)
    print_report(report)
    save_report("health", report, TARGET_P95_MS, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
