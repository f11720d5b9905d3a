"""Stop and restart one component of a running stack on the same ports (for fault tests).

Restarting on the same ports matters: Berth's settings name them, and the point of a
fault test is that Berth recovers without being restarted or reconfigured.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from devstack import ldap, procs, registry
from devstack.ports import LOOPBACK


def _state(state_dir: Path) -> dict:
    return json.loads((Path(state_dir) / "state.json").read_text())


def stop(state_dir: Path | str, name: str) -> None:
    """Stop the component ``name`` ("slapd" or "registry") that ``up`` started."""
    procs.stop(Path(state_dir), name)


def restart_slapd(state_dir: Path | str) -> None:
    """Start slapd again with its configuration and ports, and wait until it answers."""
    root = Path(state_dir).resolve()
    state = _state(root)
    ports, env = state["ports"], state["env"]
    record = ldap.start(root, root / "ldap" / "slapd.conf", ports["ldap"], ports["ldaps"], root / "logs" / "slapd.log")
    ldap.wait_ready(record, ports["ldap"], ports["ldaps"], root / "ca" / "ca.crt", env["BERTH_LDAP_BIND_PASSWORD"])


def restart_registry(state_dir: Path | str) -> None:
    """Start the plain registry process again with its config.yml (same port), and wait until it answers."""
    root = Path(state_dir).resolve()
    port = _state(root)["ports"]["registry"]
    record = registry.start(root, root / "registry" / "config.yml", root / "logs" / "registry.log")
    registry.wait_ready(record, f"https://{LOOPBACK}:{port}", root / "ca" / "ca.crt")


def freeze(state_dir: Path | str, name: str) -> None:
    """Make ``name`` stop answering without exiting (SIGSTOP), like a hung daemon."""
    record = procs.load(Path(state_dir).resolve(), name)
    if record is None or not procs.is_running(record):
        raise RuntimeError(f"{name} is not running")
    os.kill(record.pid, signal.SIGSTOP)


def thaw(state_dir: Path | str, name: str) -> None:
    """Let a frozen ``name`` run again (SIGCONT)."""
    record = procs.load(Path(state_dir).resolve(), name)
    if record is not None:
        os.kill(record.pid, signal.SIGCONT)
