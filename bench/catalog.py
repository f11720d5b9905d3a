"""Catalog benchmark: Berth against the raw registry on 10,001 repositories and 3,000 tags.

Run with ``.venv/bin/python -m bench.catalog`` (``make bench``). It builds or reuses the
dataset (:mod:`bench.dataset`), starts devstack plus a registry serving the dataset
(:mod:`bench.stack`), and times two scenarios:

- ``catalog``: every repository name;
- ``tags``: every tag of ``bench/big`` with size, date and platforms, sorted by date.

Each is measured three ways:

- ``floor``: the fewest registry requests that answer the page, one pooled session,
  16 threads for the manifests and configs;
- ``naive``: sequential, a new connection per request, one manifest and one config per tag
  (for an index its first child and that child's config);
- ``berth_cold`` / ``berth_warm``: Berth's JSON API under gunicorn, first call after a fresh
  start with an empty data directory, then the same call again.

It prints a table, one ``RATIO`` line per scenario, the targets beside the measured
values, and writes ``bench/results/catalog.json``.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urljoin

import requests

from bench.common import (
    ACCEPT_MANIFESTS,
    INDEX_TYPES,
    MAX_PAGES,
    POOL_SIZE,
    TIMEOUT,
    BenchError,
    Counter,
    Getter,
    Measurement,
    checked,
    follow_pages,
    format_table,
    fresh_get,
    median_of,
    pooled_session,
    ratio,
    timed,
    write_json,
)
from bench.dataset import DEFAULT_DATA_DIR, Dataset, ensure_dataset, verify_registry
from bench.stack import DEFAULT_STATE_DIR, PROJECT, BenchStack, BerthServer, bench_stack

BERTH_USER = ("dave", "dave-pw")
SEARCH_QUERY = "ns-0042"
BERTH_UNAVAILABLE = (404, 405, 501)
TARGETS = {
    "catalog_cold_over_floor": 1.3,
    "search_warm_ms": 50.0,
    "tags_cold_over_floor": 1.5,
    "tags_warm_ms": 300.0,
    "memory_mib": 300.0,
}


@dataclass(frozen=True)
class Document:
    """A manifest or index as served: digest, media type and parsed JSON."""

    digest: str
    media_type: str
    body: dict


# --- registry clients --------------------------------------------------------------------


def _pooled_getter(session: requests.Session, counter: Counter) -> Getter:
    """Return a counting GET over the pooled ``session``."""

    def get(url: str, headers: dict[str, str] | None = None) -> requests.Response:
        counter.add()
        return session.get(url, headers=headers or {}, timeout=TIMEOUT)

    return get


def _fresh_getter(ca_cert: Path, counter: Counter) -> Getter:
    """Return a counting GET that opens a new connection every time."""

    def get(url: str, headers: dict[str, str] | None = None) -> requests.Response:
        counter.add()
        return fresh_get(url, ca_cert, headers)

    return get


def _pages(get: Getter, url: str, key: str) -> list[str]:
    """Follow ``Link`` pages; the getter counts the requests, so the page counter is discarded."""
    return follow_pages(get, url, key, Counter())


def _document(get: Getter, base: str, repo: str, reference: str) -> Document:
    """GET a manifest or index by tag or digest, accepting all four manifest types."""
    response = checked(get(f"{base}/v2/{repo}/manifests/{reference}", {"Accept": ACCEPT_MANIFESTS}), reference)
    digest = response.headers.get("Docker-Content-Digest", reference)
    return Document(digest=digest, media_type=response.headers.get("Content-Type", ""), body=response.json())


def _config(get: Getter, base: str, repo: str, digest: str) -> dict:
    """GET an image config blob."""
    return checked(get(f"{base}/v2/{repo}/blobs/{digest}", None), digest).json()


# --- what the tag page shows ------------------------------------------------------------


def _platform(config: dict) -> str:
    """Return ``os/architecture[/variant]`` of an image config."""
    parts = [config.get("os", "?"), config.get("architecture", "?")]
    if config.get("variant"):
        parts.append(config["variant"])
    return "/".join(parts)


def _image_size(manifest: dict) -> int:
    """Return the config size plus the layer sizes of an image manifest."""
    return manifest["config"]["size"] + sum(layer["size"] for layer in manifest.get("layers", []))


def tag_rows(
    tags: list[str], documents: dict[str, Document], children: dict[str, Document], configs: dict[str, dict]
) -> list[dict]:
    """Return one row per tag (digest, size, date, platforms), newest first."""
    rows = []
    for tag in tags:
        document = documents[tag]
        images = (
            [children[entry["digest"]].body for entry in document.body["manifests"] if entry["digest"] in children]
            if document.media_type in INDEX_TYPES
            else [document.body]
        )
        image_configs = [configs[image["config"]["digest"]] for image in images if image["config"]["digest"] in configs]
        rows.append(
            {
                "tag": tag,
                "digest": document.digest,
                "media_type": document.media_type,
                "size_bytes": sum(_image_size(image) for image in images),
                "created": max((config.get("created", "") for config in image_configs), default=""),
                "platforms": sorted({_platform(config) for config in image_configs}),
            }
        )
    rows.sort(key=lambda row: row["created"], reverse=True)
    return rows


# --- floor and naive ----------------------------------------------------------------------


def floor_catalog(base: str, ca_cert: Path) -> tuple[Measurement, list[str]]:
    """All repositories with ``_catalog?n=1000`` following ``Link``, one pooled session."""
    counter = Counter()
    with pooled_session(ca_cert) as session, timed() as elapsed:
        repositories = _pages(_pooled_getter(session, counter), f"{base}/v2/_catalog?n=1000", "repositories")
    notes: dict[str, object] = {"repositories": len(repositories)}
    return Measurement("catalog", "floor", counter.value, elapsed[0], notes), repositories


def naive_catalog(base: str, ca_cert: Path) -> Measurement:
    """The same pages, sequential, a new connection per request."""
    counter = Counter()
    with timed() as elapsed:
        repositories = _pages(_fresh_getter(ca_cert, counter), f"{base}/v2/_catalog?n=1000", "repositories")
    return Measurement("catalog", "naive", counter.value, elapsed[0], {"repositories": len(repositories)})


def _fetch_all(pool: ThreadPoolExecutor, fetch: Callable[[str], object], keys: Sequence[str]) -> dict:
    """Run ``fetch`` for every key on ``pool``; return key -> result."""
    return dict(zip(keys, pool.map(fetch, keys), strict=True))


def floor_tags(base: str, ca_cert: Path, repo: str) -> tuple[Measurement, list[dict]]:
    """tags/list, every tag's manifest, each distinct index child, each distinct config; 16 threads."""
    counter = Counter()
    with pooled_session(ca_cert) as session, timed() as elapsed:
        get = _pooled_getter(session, counter)
        tags = _pages(get, f"{base}/v2/{repo}/tags/list?n=1000", "tags")
        with ThreadPoolExecutor(POOL_SIZE) as pool:
            documents = _fetch_all(pool, lambda tag: _document(get, base, repo, tag), tags)
            indexes = [doc for doc in documents.values() if doc.media_type in INDEX_TYPES]
            child_digests = sorted({entry["digest"] for doc in indexes for entry in doc.body["manifests"]})
            children = _fetch_all(pool, lambda digest: _document(get, base, repo, digest), child_digests)
            images = [doc.body for doc in documents.values() if doc.media_type not in INDEX_TYPES]
            images += [doc.body for doc in children.values()]
            config_digests = sorted({image["config"]["digest"] for image in images})
            configs = _fetch_all(pool, lambda digest: _config(get, base, repo, digest), config_digests)
        rows = tag_rows(tags, documents, children, configs)
    notes: dict[str, object] = {"tags": len(rows), "children": len(children), "configs": len(configs)}
    return Measurement("tags", "floor", counter.value, elapsed[0], notes), rows


def naive_tags(base: str, ca_cert: Path, repo: str) -> Measurement:
    """Sequential, new connection per request: per tag a manifest (index: first child) and its config."""
    counter = Counter()
    with timed() as elapsed:
        get = _fresh_getter(ca_cert, counter)
        tags = _pages(get, f"{base}/v2/{repo}/tags/list?n=1000", "tags")
        rows = []
        for tag in tags:
            document = _document(get, base, repo, tag)
            image = document
            if document.media_type in INDEX_TYPES:
                image = _document(get, base, repo, document.body["manifests"][0]["digest"])
            config = _config(get, base, repo, image.body["config"]["digest"])
            rows.append((config.get("created", ""), tag))
        rows.sort(reverse=True)
    return Measurement("tags", "naive", counter.value, elapsed[0], {"tags": len(rows)})


# --- Berth --------------------------------------------------------------------------------


class BerthUnavailable(BenchError):
    """Berth answered 404/405/501: the API route is not there yet."""


def _berth_json(session: requests.Session, url: str) -> dict:
    """GET a Berth API URL as dave; raise :class:`BerthUnavailable` on 404/405/501."""
    response = session.get(url, auth=BERTH_USER, timeout=300)
    if response.status_code in BERTH_UNAVAILABLE:
        raise BerthUnavailable(f"GET {url}: HTTP {response.status_code}")
    return checked(response, f"berth {url}").json()


def berth_catalog(session: requests.Session, base: str, query: str = "") -> tuple[list[str], int]:
    """Every repository through ``/api/v1/repositories``, following ``next``; names and requests."""
    url = f"{base}/api/v1/repositories?n=100000" + (f"&q={query}" if query else "")
    names: list[str] = []
    for calls in range(1, MAX_PAGES + 1):
        page = _berth_json(session, url)
        names += page.get("repositories") or []
        if not page.get("next"):
            return names, calls
        url = urljoin(base, page["next"])
    raise BenchError(f"berth catalog: more than {MAX_PAGES} pages")


def berth_tags(session: requests.Session, base: str, repo: str) -> list[dict]:
    """Every tag of ``repo``, newest first, through ``/api/v1/repositories/<repo>/tags?sort=created``."""
    return _berth_json(session, f"{base}/api/v1/repositories/{repo}/tags?sort=created").get("tags") or []


def _timed_call(stack: BenchStack, scenario: str, variant: str, call: Callable[[], tuple[int, dict]]) -> Measurement:
    """Time one Berth call; with the access log on, note how many registry requests it caused."""
    offset = stack.log_offset()
    with timed() as elapsed:
        requests_made, notes = call()
    upstream = stack.registry_requests_since(offset)
    if upstream is not None:
        notes["registry_requests"] = upstream
    return Measurement(scenario, variant, requests_made, elapsed[0], notes)


def _catalog_call(session: requests.Session, base: str, expected: int, query: str = "") -> Callable:
    """Return a call that lists (or searches) Berth's catalog and checks it is complete."""

    def call() -> tuple[int, dict]:
        names, calls = berth_catalog(session, base, query)
        notes: dict[str, object] = {"repositories": len(names)}
        if not query:
            notes["complete"] = len(set(names)) == expected
        return calls, notes

    return call


def mismatches(berth: list[dict], floor: list[dict]) -> int:
    """Count tags whose digest, size, date or platforms differ between Berth and the floor."""
    reference = {row["tag"]: row for row in floor}
    fields = ("digest", "size_bytes", "created", "platforms")
    missing = {"tag": None}
    return sum(
        1 for tag in berth if any(tag.get(name) != reference.get(tag.get("tag"), missing).get(name) for name in fields)
    )


def _tags_call(session: requests.Session, base: str, repo: str, floor_rows: list[dict]) -> Callable:
    """Return a call that fetches Berth's tag list and checks it against the floor's rows."""

    def call() -> tuple[int, dict]:
        tags = berth_tags(session, base, repo)
        dates = [tag.get("created") or "" for tag in tags]
        ordered = dates == sorted(dates, reverse=True)
        multi = sum(1 for tag in tags if len(tag.get("platforms") or []) > 1)
        notes = {"tags": len(tags), "newest_first": ordered, "multi_arch": multi}
        return 1, notes | {"differ_from_floor": mismatches(tags, floor_rows)}

    return call


def _berth_run(
    stack: BenchStack,
    name: str,
    calls: list[tuple[str, str, Callable]],
    unavailable: dict[str, str],
    berth_dir: Path,
) -> tuple[list, dict]:
    """Start Berth fresh (empty data dir), make ``calls`` in order, read its memory, stop it.

    A scenario whose route answers 404/405/501, or whose Berth does not start, is recorded
    in ``unavailable`` and skipped.
    """
    logs = stack.state_dir / "logs" / f"berth-{name}.log"
    server = BerthServer(stack.env, stack.state_dir / f"berth-{name}", logs, berth_dir)
    try:
        server.start()
    except BenchError as exc:
        server.stop()
        for scenario, _, _ in calls:
            unavailable.setdefault(scenario, f"berth did not start: {exc}")
        return [], {}
    try:
        with requests.Session() as session:
            session.trust_env = False
            results = []
            for scenario, variant, make in calls:
                if scenario in unavailable:
                    continue
                try:
                    results.append(_timed_call(stack, scenario, variant, make(session, server.base_url)))
                except BerthUnavailable as exc:
                    unavailable[scenario] = str(exc)
        return results, server.memory()
    finally:
        server.stop()


def _medians(runs: list[Measurement]) -> list[Measurement]:
    """Group runs by (scenario, variant), keeping first-seen order; return each group's median."""
    groups: dict[tuple[str, str], list[Measurement]] = {}
    for run in runs:
        groups.setdefault((run.scenario, run.variant), []).append(run)
    return [median_of(group) for group in groups.values()]


def _peak(memories: list[dict]) -> dict:
    """Return the memory reading with the largest sum."""
    return max(memories, key=lambda memory: memory.get("sum_mib", 0), default={})


def berth_measurements(
    stack: BenchStack, dataset: Dataset, catalog_size: int, floor_rows: list[dict], repeat: int, berth_dir: Path
) -> tuple[list[Measurement], dict, dict[str, str]]:
    """Run Berth from cold ``repeat`` times per scenario: catalog (and search), then tags.

    Every run is a fresh gunicorn with an empty data directory. Returns the median
    measurements, the peak memory of each scenario's runs and the unavailable scenarios.
    """
    big = dataset.big_repository
    catalog_calls = [
        ("catalog", "berth_cold", lambda s, b: _catalog_call(s, b, catalog_size)),
        ("catalog", "berth_warm", lambda s, b: _catalog_call(s, b, catalog_size)),
        ("catalog", "berth_warm2", lambda s, b: _catalog_call(s, b, catalog_size)),
        ("search", "berth_warm", lambda s, b: _catalog_call(s, b, catalog_size, SEARCH_QUERY)),
        ("search", "berth_warm2", lambda s, b: _catalog_call(s, b, catalog_size, SEARCH_QUERY)),
    ]
    tags_calls = [
        ("tags", "berth_cold", lambda s, b: _tags_call(s, b, big, floor_rows)),
        ("tags", "berth_warm", lambda s, b: _tags_call(s, b, big, floor_rows)),
        ("tags", "berth_warm2", lambda s, b: _tags_call(s, b, big, floor_rows)),
    ]
    unavailable: dict[str, str] = {}
    runs: list[Measurement] = []
    memory: dict[str, list[dict]] = {"catalog_run": [], "tags_run": []}
    for name, calls in (("catalog", catalog_calls), ("tags", tags_calls)):
        for _ in range(repeat):
            measured, reading = _berth_run(stack, name, calls, unavailable, berth_dir)
            runs += measured
            if reading:
                memory[f"{name}_run"].append(reading)
    return _medians(runs), {name: _peak(readings) for name, readings in memory.items()}, unavailable


# --- report -------------------------------------------------------------------------------


def _seconds(rows: list[Measurement], scenario: str, variant: str) -> float | None:
    """Return the seconds of one (scenario, variant) row, None if it was not measured."""
    return next((row.seconds for row in rows if row.scenario == scenario and row.variant == variant), None)


def ratio_lines(rows: list[Measurement]) -> list[str]:
    """Return the ``RATIO`` line of each scenario."""
    lines = []
    for scenario in ("catalog", "tags"):
        floor = _seconds(rows, scenario, "floor")
        cold = _seconds(rows, scenario, "berth_cold")
        warm = _seconds(rows, scenario, "berth_warm")
        naive = _seconds(rows, scenario, "naive")
        lines.append(
            f"RATIO {scenario} berth_cold/floor={ratio(cold, floor)} "
            f"berth_warm/floor={ratio(warm, floor)} naive/berth_cold={ratio(naive, cold)}"
        )
    return lines


def _verdict(value: float | None, limit: float, inclusive: bool) -> str:
    """Return PASS, FAIL or n/a for ``value`` against ``limit``."""
    if value is None:
        return "n/a"
    return "PASS" if (value <= limit if inclusive else value < limit) else "FAIL"


def target_lines(rows: list[Measurement], memory: dict) -> list[str]:
    """Return the targets beside the measured values."""

    def over(scenario: str) -> float | None:
        cold, floor = _seconds(rows, scenario, "berth_cold"), _seconds(rows, scenario, "floor")
        return cold / floor if cold is not None and floor else None

    def millis(scenario: str) -> float | None:
        value = _seconds(rows, scenario, "berth_warm")
        return value * 1000 if value is not None else None

    peaks = [run.get("sum_mib") for run in memory.values() if run]
    checks = [
        ("catalog berth_cold/floor", over("catalog"), TARGETS["catalog_cold_over_floor"], True, "<="),
        ("search warm (ms)", millis("search"), TARGETS["search_warm_ms"], False, "<"),
        ("tags berth_cold/floor", over("tags"), TARGETS["tags_cold_over_floor"], True, "<="),
        ("tags warm (ms)", millis("tags"), TARGETS["tags_warm_ms"], False, "<"),
        ("peak memory sum (MiB)", max(peaks) if peaks else None, TARGETS["memory_mib"], False, "<"),
    ]
    lines = [f"{'target':<26} {'measured':>10}  {'goal':<10} verdict"]
    for name, value, limit, inclusive, sign in checks:
        shown = f"{value:.2f}" if value is not None else "n/a"
        lines.append(f"{name:<26} {shown:>10}  {sign} {limit:<7g} {_verdict(value, limit, inclusive)}")
    return lines


# --- main ---------------------------------------------------------------------------------


def registry_measurements(
    stack: BenchStack, dataset: Dataset, warmup: bool, repeat: int
) -> tuple[list[Measurement], int, list[dict]]:
    """Floor (median of ``repeat``) and naive (once) for both scenarios.

    Returns the measurements, the catalog size and the floor's tag rows (the reference
    Berth's answer is checked against).

    An untimed warm-up pass first fills the page cache and the registry's in-memory blob
    descriptor cache, so that floor, naive and Berth all meet a warm registry.
    """
    base, ca_cert, big = stack.registry_url, stack.ca_cert, dataset.big_repository
    if warmup:
        floor_catalog(base, ca_cert)
        floor_tags(base, ca_cert, big)
    catalog_runs = [floor_catalog(base, ca_cert) for _ in range(repeat)]
    tags_runs = [floor_tags(base, ca_cert, big) for _ in range(repeat)]
    tags_floor = median_of([run for run, _ in tags_runs])
    catalog_floor = median_of([run for run, _ in catalog_runs])
    rows = [catalog_floor, naive_catalog(base, ca_cert), tags_floor, naive_tags(base, ca_cert, big)]
    return rows, len(set(catalog_runs[0][1])), tags_runs[0][1]


def run(args: argparse.Namespace) -> dict:
    """Build or reuse the dataset, run every measurement, print and return the report."""
    with timed() as build:
        dataset = ensure_dataset(args.data_dir, rebuild=args.rebuild)
    how = "reused" if dataset.reused else f"built in {dataset.build_seconds:.1f} s"
    print(f"dataset: {dataset.repositories} repositories, {dataset.big_tags} tags in {dataset.big_repository} ({how})")
    report: dict = {"dataset": {"repositories": dataset.repositories, "big_tags": dataset.big_tags}}
    report["dataset"] |= {"build_seconds": dataset.build_seconds, "reused": dataset.reused, "ready_in": build[0]}
    with bench_stack(dataset.storage_root, args.state_dir, access_log=args.access_log) as stack:
        report["verify"] = verify_registry(stack.registry_url, stack.ca_cert, dataset)
        print(f"registry {stack.registry_url}: {report['verify']}")
        rows, catalog_size, floor_rows = registry_measurements(stack, dataset, not args.no_warmup, args.repeat)
        memory: dict = {}
        report["berth"] = "not run"
        if not args.no_berth:
            berth_rows, memory, unavailable = berth_measurements(
                stack, dataset, catalog_size, floor_rows, args.repeat, args.berth_dir
            )
            rows += berth_rows
            report["berth"] = {scenario: f"API not available ({why})" for scenario, why in unavailable.items()} or "ok"
            for scenario, why in unavailable.items():
                print(f"berth: API not available for {scenario} ({why})")
    print()
    print(format_table(rows))
    if any(memory.values()):
        print(f"berth peak memory (VmHWM, MiB): {memory}")
    print()
    for line in ratio_lines(rows):
        print(line)
    print()
    for line in target_lines(rows, memory):
        print(line)
    report |= {"measurements": [row.as_dict() for row in rows], "memory": memory, "ratios": ratio_lines(rows)}
    report["targets"] = TARGETS
    report["access_log"] = args.access_log
    report["repeat"] = args.repeat
    report["berth_dir"] = str(args.berth_dir)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, run, and write ``bench/results/catalog.json``."""
    parser = argparse.ArgumentParser(prog="python -m bench.catalog", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="dataset cache (.bench-data)")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="devstack state (.bench-stack)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the dataset even if it is cached")
    parser.add_argument("--no-berth", action="store_true", help="measure only the registry (floor, naive)")
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up pass")
    parser.add_argument("--berth-dir", type=Path, default=PROJECT, help="the Berth checkout to run (default: this one)")
    parser.add_argument(
        "--repeat", type=int, default=3, choices=range(1, 11), metavar="N", help="runs per floor/Berth timing (median)"
    )
    parser.add_argument(
        "--access-log", action="store_true", help="registry access log on, to count Berth's registry requests"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    report = run(args)
    report["meta"] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    print(f"\nresults: {write_json('catalog', report)} (total {report['meta']['total_seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
