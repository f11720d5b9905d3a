"""Findings: what a health check saw, in plain words, with what to do about it.

Every health component (registry, NFS, Swarm, certificates) reports a list of
:class:`Finding`. The JSON API promises the levels ``ok``, ``warning`` and ``critical``;
``info`` is an extra level for notes that need no action now (a deliberate choice, a
default worth knowing about). Clients that only know the three promised levels can treat
``info`` like ``ok``: it never makes a component unhealthy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Level(StrEnum):
    """How bad a finding is; ordered ``ok < info < warning < critical``."""

    OK = "ok"
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for ok up to 3 for critical."""
        return _RANKS[self.value]

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Level):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Level):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Level):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Level):
            return NotImplemented
        return self.rank >= other.rank


_RANKS = {"ok": 0, "info": 1, "warning": 2, "critical": 3}


@dataclass(frozen=True)
class Finding:
    """One thing a check saw: what is wrong (or right), and what to do about it."""

    level: Level
    message: str
    fix: str = ""
    detail: str = ""

    def as_dict(self) -> dict:
        """JSON-ready: ``{"level": "warning", "message": ..., "fix": ..., "detail": ...}``."""
        return {"level": self.level.value, "message": self.message, "fix": self.fix, "detail": self.detail}


def worst(findings: Iterable[Finding]) -> Level:
    """The most severe level among ``findings``; ``Level.OK`` when there are none."""
    return max((f.level for f in findings), default=Level.OK)
