"""The envelope every health component reports in: ok, error, findings, details, when.

Each component's report (:class:`berth.nfs.model.NfsReport`,
:class:`berth.swarm.model.SwarmReport`, and plain :class:`ComponentReport` for the registry
and the certificates) derives from :class:`ComponentReport`, so the shape of every part of
``/api/v1/status`` is defined here once; a subclass only says what its details are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from berth.findings import Finding, Level, worst


@dataclass(kw_only=True)
class ComponentReport:
    """One health component's verdict and what it saw."""

    findings: list[Finding] = field(default_factory=list)
    details: dict = field(default_factory=dict)
    error: str | None = None
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: Why the component could not be judged this time (its state is then ``unknown``), else None.
    unchecked: str | None = None

    @property
    def ok(self) -> bool:
        """No critical finding and no error."""
        return self.error is None and worst(self.findings) != Level.CRITICAL

    @property
    def level(self) -> Level:
        """The worst finding's level (critical when there is an error)."""
        return Level.CRITICAL if self.error else worst(self.findings)

    def detail_dict(self) -> dict:
        """What the component saw, JSON-ready; subclasses build it from their fields."""
        return self.details

    def as_dict(self) -> dict:
        """JSON-ready, in the shape of ``/api/v1/status`` parts."""
        return {
            "ok": self.ok,
            "error": self.error,
            "findings": [f.as_dict() for f in self.findings],
            "details": self.detail_dict(),
            "checked_at": self.checked_at.isoformat(),
            **({"unchecked": self.unchecked} if self.unchecked else {}),
        }
