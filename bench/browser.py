"""What a person waits for in Chromium: first pages cold and warm, against the raw registry floor.

Run with ``.venv/bin/python -m bench.browser`` (no Docker engine: a plain devstack plus the
dataset's registry, as ``bench.catalog``). Each run starts Berth under gunicorn with a
fresh data directory and opens a fresh browser context (Debian's Chromium, headless,
launched as tests/browser/conftest.py does), logs in through the form, then times:

- ``tag_page``: ``/repositories/bench/big/tags/<tag>`` until its digest shows;
- ``catalog``: ``/repositories`` until the first 50 names show;
- ``first_page``: ``/repositories/bench/big`` until every row has a size and a date;
- ``date_sort`` (its own fresh Berth): ``?sort=created&order=desc`` until the page shows
  the order over all 3,000 tags (the progress line gone, the image total there).

Each is then loaded three times more in the same context (``warm``: the median). Three
runs; the medians are printed with the raw floor of the same run (``bench.catalog``'s
floor: all 3,000 tags with 16 threads, and the whole catalog) and ``RATIO`` lines.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.catalog import floor_catalog, floor_tags
from bench.common import write_json
from bench.dataset import DEFAULT_DATA_DIR, ensure_dataset
from bench.stack import DEFAULT_STATE_DIR, PROJECT, BenchStack, BerthServer, bench_stack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
TARGETS = {"first_page_cold_s": 1.0, "catalog_cold_s": 1.0, "tag_page_cold_s": 0.3, "warm_s": 0.15}
ROWS_READY = """() => { const rows = document.querySelectorAll('table.tags tbody tr');
  return rows.length > 0 && [...rows].every((r) => r.querySelector('time') && r.querySelector('td.num')); }"""
SORTED_READY = """() => !document.querySelector('.progress-line')
  && /images/.test((document.querySelector('#tag-list .count') || {}).textContent || '')
  && document.querySelectorAll('table.tags tbody tr time').length > 0"""
CATALOG_READY = "() => document.querySelectorAll('#repository-list tbody tr a').length >= 50"
DONE = "() => !document.querySelector('.progress-line')"
TAG_READY = "() => !!document.body && document.body.textContent.includes('sha256:')"


def timed_visit(page, url: str, ready: str, timeout: float = 120.0) -> float:
    """Seconds from the start of the navigation to ``ready`` being true, by the page's own clock.

    ``performance.now()`` counts from the navigation's start, so Playwright's round trips
    (about 50 ms on this machine) are not in the figure; the wall time is checked to agree.
    """
    started = time.perf_counter()
    page.goto(url, wait_until="commit", timeout=timeout * 1000)
    handle = page.wait_for_function(f"() => ({ready})() && performance.now()", timeout=timeout * 1000, polling=5)
    in_page = handle.json_value() / 1000
    return min(in_page, time.perf_counter() - started)


def log_in(page, base: str) -> None:
    """Log in as dave through the form."""
    page.goto(f"{base}/login")
    page.get_by_label("Username").fill("dave")
    page.get_by_label("Password").fill("dave-pw")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/")


def one_run(
    stack: BenchStack, browser, scenarios: list[tuple[str, str, str]], name: str, berth_dir: Path
) -> dict[str, dict]:
    """A fresh Berth and browser context: each scenario cold, then three warm loads."""
    work = stack.state_dir / f"browser-{name}"
    server = BerthServer(stack.env, work / "data", work / "gunicorn.log", berth_dir)
    server.start()
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        log_in(page, server.base_url)
        results = {}
        for scenario, path, ready in scenarios:
            cold = timed_visit(page, server.base_url + path, ready)
            # the rest streams in and htmx swaps the complete list in: warm means complete
            page.wait_for_function(DONE, timeout=300_000, polling=100)
            warm = [timed_visit(page, server.base_url + path, ready) for _ in range(3)]
            results[scenario] = {"cold": cold, "warm": statistics.median(warm)}
        return results
    finally:
        context.close()
        server.stop()


def measure(stack: BenchStack, runs: int, sample_tag: str, berth_dir: Path = PROJECT) -> dict:
    """``runs`` rounds of floor and Berth, interleaved; every figure's median and range."""
    from playwright.sync_api import sync_playwright

    big = "/repositories/bench/big"
    first = [("tag_page", f"{big}/tags/{sample_tag}", TAG_READY), ("catalog", "/repositories", CATALOG_READY)]
    first.append(("first_page", big, ROWS_READY))
    sort = [("date_sort", f"{big}?sort=created&order=desc", SORTED_READY)]
    samples: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        samples.setdefault(key, []).append(value)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        for number in range(runs):
            add("floor_tags", floor_tags(stack.registry_url, stack.ca_cert, "bench/big")[0].seconds)
            add("floor_catalog", floor_catalog(stack.registry_url, stack.ca_cert)[0].seconds)
            pair = (
                one_run(stack, browser, first, f"{number}a", berth_dir),
                one_run(stack, browser, sort, f"{number}b", berth_dir),
            )
            for results in pair:
                for scenario, times in results.items():
                    add(f"{scenario}_cold", times["cold"])
                    add(f"{scenario}_warm", times["warm"])
            add("load1", os.getloadavg()[0])
        browser.close()
    return {key: {"median": statistics.median(v), "min": min(v), "max": max(v)} for key, v in samples.items()}


def report_lines(figures: dict) -> list[str]:
    """The table, the RATIO lines and the targets."""

    def m(key: str) -> float:
        return figures[key]["median"]

    lines = [f"{'figure':<18} {'median s':>9} {'min':>7} {'max':>7}"]
    for key, value in figures.items():
        lines.append(f"{key:<18} {value['median']:>9.3f} {value['min']:>7.3f} {value['max']:>7.3f}")
    lines.append("")
    lines.append(f"RATIO first_page_cold/floor_tags={m('first_page_cold') / m('floor_tags'):.2f}")
    lines.append(f"RATIO date_sort_cold/floor_tags={m('date_sort_cold') / m('floor_tags'):.2f}")
    lines.append(f"RATIO catalog_cold/floor_catalog={m('catalog_cold') / m('floor_catalog'):.2f}")
    checks: list[tuple[str, float, float]] = [
        ("first_page cold (s)", m("first_page_cold"), TARGETS["first_page_cold_s"]),
        ("first_page cold/floor", m("first_page_cold") / m("floor_tags"), 0.15),
        ("catalog cold (s)", m("catalog_cold"), TARGETS["catalog_cold_s"]),
        ("tag_page cold (s)", m("tag_page_cold"), TARGETS["tag_page_cold_s"]),
        ("date_sort cold/floor", m("date_sort_cold") / m("floor_tags"), 1.3),
    ]
    checks += [(f"{s} warm (s)", m(f"{s}_warm"), TARGETS["warm_s"]) for s in ("first_page", "catalog", "tag_page")]
    checks.append(("date_sort warm (s)", m("date_sort_warm"), TARGETS["warm_s"]))
    lines.append("")
    for name, value, limit in checks:
        lines.append(f"{name:<24} {value:>8.3f}  < {limit:<6g} {'PASS' if value < limit else 'FAIL'}")
    return lines


def main(argv: Sequence[str] | None = None, out: Callable[[str], None] = print) -> int:
    """Build or reuse the dataset, start the stack, measure, print and write ``bench/results/browser.json``."""
    parser = argparse.ArgumentParser(prog="python -m bench.browser", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR.with_name(".bench-stack-browser"))
    parser.add_argument("--runs", type=int, default=3, choices=range(1, 11), metavar="N")
    parser.add_argument("--berth-dir", type=Path, default=PROJECT, help="the Berth checkout to run (e.g. an older one)")
    args = parser.parse_args(argv)
    dataset = ensure_dataset(args.data_dir)
    with bench_stack(dataset.storage_root, args.state_dir) as stack:
        figures = measure(stack, args.runs, dataset.sample_manifest_tag, args.berth_dir)
    for line in report_lines(figures):
        out(line)
    report = {"figures": figures, "targets": TARGETS, "runs": args.runs, "berth_dir": str(args.berth_dir)}
    out(f"\nresults: {write_json('browser', report)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
