"""Roles, ordered so that a higher one includes the lower: admin ⊃ ops ⊃ developer."""

from __future__ import annotations

from enum import IntEnum


class Role(IntEnum):
    """What a user may see and do."""

    DEVELOPER = 1
    OPS = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        """The role's name as users read it."""
        return self.name.lower()
