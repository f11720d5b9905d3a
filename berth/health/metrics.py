"""Prometheus metrics: registry request timings, and gauges read from the health snapshot.

Request timings are a histogram (shared between gunicorn workers through
prometheus_client's multiprocess mode when PROMETHEUS_MULTIPROC_DIR is set, as
gunicorn.conf.py does). Health gauges are computed at scrape time from the snapshot in
SQLite, so every worker answers the same.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime

from prometheus_client import REGISTRY, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

REQUEST_SECONDS = Histogram(
    "berth_registry_request_seconds",
    "Time of each HTTP request Berth made to the registry, by method and outcome.",
    ["method", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def observe_registry_request(method: str, outcome: str, seconds: float) -> None:
    """Record one registry request (called by RegistryClient)."""
    REQUEST_SECONDS.labels(method, outcome).observe(seconds)


class HealthCollector:
    """Gauges derived from the latest health snapshot."""

    def __init__(self, snapshot: Callable[[], dict]):
        self._snapshot = snapshot

    def collect(self):
        snapshot = self._snapshot()
        registry, nfs, swarm, certs = (snapshot.get(k) or {} for k in ("registry", "nfs", "swarm", "certs"))
        up = GaugeMetricFamily("berth_registry_up", "1 if the registry answered GET /v2/ at the last check.")
        up.add_metric([], 1.0 if (registry.get("details") or {}).get("latency_ms") is not None else 0.0)
        yield up
        yield from _nfs_metrics(nfs.get("details") or {})
        yield _cert_metric(registry.get("details") or {}, certs.get("details") or {})
        yield from _swarm_metrics(swarm.get("details") or {})
        findings = GaugeMetricFamily(
            "berth_findings", "Current findings by component and level.", labels=["component", "level"]
        )
        for component, report in snapshot.items():
            counts = {"ok": 0, "info": 0, "warning": 0, "critical": 0}
            for finding in report.get("findings") or []:
                counts[finding.get("level", "info")] = counts.get(finding.get("level", "info"), 0) + 1
            for level, count in counts.items():
                findings.add_metric([component, level], count)
        yield findings
        yield from _state_metrics(snapshot)


STATES = ("healthy", "warning", "critical", "unknown", "stale")


def _state_metrics(snapshot: dict):
    """Each component's state (one series per state, 1 for the current one) and the age of its check."""
    state = GaugeMetricFamily(
        "berth_component_state",
        "1 for each component's current state, 0 for the others.",
        labels=["component", "state"],
    )
    age = GaugeMetricFamily(
        "berth_component_check_age_seconds", "Seconds since each component was last checked.", labels=["component"]
    )
    for component, report in snapshot.items():
        for name in STATES:
            state.add_metric([component, name], 1.0 if report.get("state") == name else 0.0)
        if report.get("age_seconds") is not None:
            age.add_metric([component], float(report["age_seconds"]))
    yield state
    yield age


def _nfs_metrics(details: dict):
    capacity = details.get("capacity") or {}
    mounted = GaugeMetricFamily("berth_nfs_mounted", "1 if the registry path is on a mounted NFS share.")
    fs_type = (details.get("mount") or {}).get("fs_type") or ""
    mounted.add_metric([], 1.0 if fs_type in ("nfs", "nfs4") else 0.0)
    yield mounted
    for name, key, text in (
        ("berth_nfs_free_bytes", "free_bytes", "Free bytes on the registry's storage."),
        ("berth_nfs_free_inodes", "inodes_free", "Free inodes on the registry's storage."),
    ):
        if capacity.get(key) is not None:
            gauge = GaugeMetricFamily(name, text)
            gauge.add_metric([], float(capacity[key]))
            yield gauge
    if details.get("probe_latency_ms") is not None:
        probe = GaugeMetricFamily("berth_nfs_probe_seconds", "Time of the last write/read/delete probe.")
        probe.add_metric([], details["probe_latency_ms"] / 1000)
        yield probe


def _cert_metric(registry_details: dict, cert_details: dict) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily("berth_cert_not_after_seconds", "Expiry of each certificate, Unix time.", labels=["cert"])
    sources = {
        "ca": cert_details.get("ca"),
        "server": cert_details.get("server"),
        "served": registry_details.get("served_certificate"),
    }
    for label, info in sources.items():
        if info and info.get("not_after"):
            gauge.add_metric([label], datetime.fromisoformat(info["not_after"]).timestamp())
    return gauge


def _swarm_metrics(details: dict):
    nodes = GaugeMetricFamily("berth_swarm_nodes", "Swarm nodes by state.", labels=["state"])
    states: dict[str, int] = {}
    for node in details.get("nodes") or []:
        states[node.get("state", "unknown")] = states.get(node.get("state", "unknown"), 0) + 1
    for state, count in states.items():
        nodes.add_metric([state], count)
    yield nodes
    service = details.get("service") or {}
    replicas = GaugeMetricFamily("berth_swarm_service_replicas", "Replicas of the registry service.", labels=["state"])
    for state in ("desired", "running"):
        value = service.get(f"replicas_{state}")
        if value is not None:
            replicas.add_metric([state], float(value))
    yield replicas


def exposition(health: HealthCollector) -> bytes:
    """The text of /metrics: request timings (all workers) and health gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        shared = CollectorRegistry()
        MultiProcessCollector(shared)
    else:
        shared = REGISTRY
    own = CollectorRegistry(auto_describe=False)
    own.register(health)
    return generate_latest(shared) + generate_latest(own)
