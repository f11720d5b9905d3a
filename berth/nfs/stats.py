"""The NFS client's counters: ``/proc/self/mountstats`` parsed, and what they say about the server.

Pure functions over text, no I/O, that never raise on odd input. The format
(``nfs_show_stats`` and ``net/sunrpc/stats.c``): a ``device SRC mounted on PATH with
fstype nfs statvers=1.1`` line, then tab-indented ``opts:``, ``age:``, ``xprt:`` and,
after ``per-op statistics``, one ``NAME: ops trans timeouts sent recv queue_ms rtt_ms
exe_ms [errors]`` line per operation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from berth.findings import Finding, Level
from berth.nfs.mounts import NFS_TYPES, parse_options, unescape

# Field names of the xprt: line, per transport (net/sunrpc/xprtsock.c xs_*_print_stats).
_XPRT_FIELDS = {
    "tcp": (
        "srcport",
        "bind_count",
        "connect_count",
        "connect_time",
        "idle_time",
        "sends",
        "recvs",
        "bad_xids",
        "req_u",
        "bklog_u",
        "max_slots",
        "sending_u",
        "pending_u",
    ),
    "udp": (
        "srcport",
        "bind_count",
        "sends",
        "recvs",
        "bad_xids",
        "req_u",
        "bklog_u",
        "max_slots",
        "sending_u",
        "pending_u",
    ),
    "rdma": (
        "srcport",
        "bind_count",
        "connect_count",
        "connect_time",
        "idle_time",
        "sends",
        "recvs",
        "bad_xids",
        "req_u",
        "bklog_u",
    ),
}


@dataclass(frozen=True)
class OpStats:
    """Counters of one RPC operation since mount (times are cumulative milliseconds)."""

    ops: int
    transmissions: int
    major_timeouts: int
    bytes_sent: int = 0
    bytes_received: int = 0
    queue_ms: int = 0
    rtt_ms: int = 0
    execute_ms: int = 0
    errors: int | None = None

    @property
    def retransmissions(self) -> int:
        """Transmissions beyond the first of each operation."""
        return max(0, self.transmissions - self.ops)

    @property
    def avg_rtt_ms(self) -> float:
        """Mean time from sending a request to its reply."""
        return self.rtt_ms / self.ops if self.ops else 0.0

    @property
    def avg_exe_ms(self) -> float:
        """Mean time from queueing a request to its completion."""
        return self.execute_ms / self.ops if self.ops else 0.0


@dataclass(frozen=True)
class NfsStats:
    """The mountstats block of one NFS mount."""

    device: str
    mount_point: str
    fs_type: str
    options: dict[str, str | None] = field(default_factory=dict, hash=False)
    age_seconds: int | None = None
    transport: str | None = None
    xprt: dict[str, int] = field(default_factory=dict, hash=False)
    ops: dict[str, OpStats] = field(default_factory=dict, hash=False)

    @property
    def major_timeouts(self) -> int:
        """Requests that went unanswered through all their retries, summed over operations."""
        return sum(op.major_timeouts for op in self.ops.values())

    @property
    def retransmissions(self) -> int:
        """Retransmissions summed over operations."""
        return sum(op.retransmissions for op in self.ops.values())

    @property
    def total_ops(self) -> int:
        """Operations of every kind since mount."""
        return sum(op.ops for op in self.ops.values())


def parse_mountstats(text: str) -> dict[str, NfsStats]:
    """The NFS blocks of ``/proc/self/mountstats``, keyed by mount point (the last one wins)."""
    result: dict[str, NfsStats] = {}
    block: dict | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("device "):
            _finish(block, result)
            block = _device_line(line)
        elif block is not None:
            _block_line(block, line)
    _finish(block, result)
    return result


def _device_line(line: str) -> dict | None:
    match = re.match(r"device (\S+) mounted on (\S+) with fstype (\S+)", line)
    if match is None or match.group(3) not in NFS_TYPES:
        return None
    device, point, fs_type = (unescape(g) for g in match.groups())
    return {
        "device": device,
        "mount_point": point,
        "fs_type": fs_type,
        "options": {},
        "age": None,
        "transport": None,
        "xprt": {},
        "ops": {},
        "per_op": False,
    }


def _block_line(block: dict, line: str) -> None:
    key, sep, rest = line.partition(":")
    if not sep:
        block["per_op"] = block["per_op"] or line == "per-op statistics"
        return
    rest = rest.strip()
    if block["per_op"]:
        numbers = _numbers(rest)
        if key and len(numbers) >= 8:
            block["ops"][key] = OpStats(*numbers[:9])  # the ninth counter, errors, only on newer kernels
    elif key == "opts":
        block["options"] = parse_options(rest)
    elif key == "age":
        ages = _numbers(rest)
        block["age"] = ages[0] if ages else None
    elif key == "xprt":
        _xprt_line(block, rest.split())


def _xprt_line(block: dict, parts: list[str]) -> None:
    """One ``xprt:`` line; with ``nconnect`` there is one per connection, and the counters add up."""
    if not parts:
        return
    transport, numbers = parts[0], _numbers(" ".join(parts[1:]))
    block["transport"] = block["transport"] or transport
    names = _XPRT_FIELDS.get(transport, ())
    for name, value in zip(names, numbers, strict=False):
        if name == "srcport":
            block["xprt"].setdefault(name, value)
        else:
            block["xprt"][name] = block["xprt"].get(name, 0) + value
    block["xprt"]["connections"] = block["xprt"].get("connections", 0) + 1


def _numbers(text: str) -> list[int]:
    """Leading integers of ``text``, stopping at the first word that is not one."""
    numbers = []
    for word in text.split():
        try:
            numbers.append(int(word))
        except ValueError:
            break
    return numbers


def _finish(block: dict | None, result: dict[str, NfsStats]) -> None:
    if block is None:
        return
    result[block["mount_point"]] = NfsStats(
        device=block["device"],
        mount_point=block["mount_point"],
        fs_type=block["fs_type"],
        options=block["options"],
        age_seconds=block["age"],
        transport=block["transport"],
        xprt=block["xprt"],
        ops=block["ops"],
    )


def stats_findings(stats: NfsStats) -> list[Finding]:
    """What the RPC counters since mount say: requests that timed out completely, retransmissions."""
    findings = []
    if stats.major_timeouts:
        findings.append(
            Finding(
                Level.WARNING,
                f"{stats.major_timeouts} NFS requests went unanswered through all retries since the mount "
                f"({stats.age_seconds or 0} s ago): the server stopped responding at times.",
                "Look for 'server not responding' in the kernel log (dmesg) and check the server's load and network.",
            )
        )
    total = stats.total_ops
    if total >= 1000 and stats.retransmissions * 100 > total:
        share = 100.0 * stats.retransmissions / total
        findings.append(
            Finding(
                Level.WARNING,
                f"{share:.1f} % of NFS requests were retransmitted ({stats.retransmissions} of {total}).",
                "Check the network between this node and the server (drops, MTU).",
            )
        )
    return findings
