"""The shape every health component reports in: ok, error, findings, details, when."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from berth.findings import Finding, Level, worst


@dataclass
class ComponentReport:
    """One health component's verdict and what it saw."""

    findings: list[Finding] = field(default_factory=list)
    details: dict = field(default_factory=dict)
    error: str | None = None
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def ok(self) -> bool:
        """No critical finding and no error."""
        return self.error is None and worst(self.findings) != Level.CRITICAL

    def as_dict(self) -> dict:
        """JSON-ready, in the shape of ``/api/v1/status`` parts."""
        return {
            "ok": self.ok,
            "error": self.error,
            "findings": [f.as_dict() for f in self.findings],
            "details": self.details,
            "checked_at": self.checked_at.isoformat(),
        }
