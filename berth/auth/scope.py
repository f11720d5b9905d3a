"""Registry token scopes (``repository:NAME:pull,push``), parsed once at the edge into a type.

The token server reads scopes from a query string anyone can send, so parsing never
raises: whatever is malformed, too long, too many, or names no valid repository is
dropped and therefore granted nothing. What survives is a :class:`Scope` whose name
matches Distribution's repository grammar (``berth.registry.references``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from berth.registry.references import NAME_RE

MAX_SCOPES = 32
MAX_SCOPE_LENGTH = 512
MAX_QUERY_LENGTH = 8 * 1024

REPOSITORY = "repository"
REGISTRY = "registry"
CATALOG = "catalog"
REPOSITORY_ACTIONS = frozenset({"pull", "push", "delete", "*"})
REGISTRY_ACTIONS = frozenset({"*"})

_TYPE_RE = re.compile(r"^(repository|registry)(?:\(([a-z0-9]{1,32})\))?\Z")
_ACTION_RE = re.compile(r"^(?:[a-z]{1,16}|\*)\Z")


@dataclass(frozen=True, order=True)
class Scope:
    """One resource a client asks access to, and the actions it asks for."""

    type: str
    name: str
    actions: frozenset[str]
    resource_class: str | None = None

    @property
    def is_catalog(self) -> bool:
        """Whether this is ``registry:catalog:*`` (listing every repository)."""
        return self.type == REGISTRY and self.name == CATALOG

    def with_actions(self, actions: Iterable[str]) -> Scope:
        """The same resource with other actions."""
        return Scope(self.type, self.name, frozenset(actions), self.resource_class)

    def __str__(self) -> str:
        kind = f"{self.type}({self.resource_class})" if self.resource_class else self.type
        return f"{kind}:{self.name}:{','.join(sorted(self.actions))}"


def parse_scope(text: str) -> Scope | None:
    """The scope ``text`` names, or None when it is malformed or names nothing grantable."""
    if not text or len(text) > MAX_SCOPE_LENGTH or not text.isprintable():
        return None
    kind, sep, rest = text.partition(":")
    name, sep2, actions_text = rest.rpartition(":")
    type_match = _TYPE_RE.match(kind)
    if not (sep and sep2 and type_match):
        return None
    resource_type, resource_class = type_match.group(1), type_match.group(2)
    actions = {a for a in actions_text.split(",") if _ACTION_RE.match(a)}
    if resource_type == REPOSITORY:
        if len(name) > 255 or not NAME_RE.match(name):
            return None
        actions &= REPOSITORY_ACTIONS
    else:
        if name != CATALOG or resource_class:
            return None
        actions &= REGISTRY_ACTIONS
    if not actions:
        return None
    return Scope(resource_type, name, frozenset(actions), resource_class)


def parse_scopes(values: Iterable[str]) -> tuple[Scope, ...]:
    """Every valid scope in ``values`` (each may hold several, space-separated), merged, at most MAX_SCOPES.

    The same resource asked for twice is merged into one scope with the union of its
    actions, so a thousand repeats cost one entry; parsing stops after MAX_SCOPES
    distinct resources or MAX_QUERY_LENGTH characters.
    """
    merged: dict[tuple[str, str, str | None], set[str]] = {}
    budget = MAX_QUERY_LENGTH
    for value in values:
        budget -= len(value)
        if budget < 0:
            break
        for text in value.split(" "):
            scope = parse_scope(text)
            if scope is None:
                continue
            key = (scope.type, scope.name, scope.resource_class)
            if key not in merged and len(merged) >= MAX_SCOPES:
                continue
            merged.setdefault(key, set()).update(scope.actions)
    return tuple(Scope(t, n, frozenset(a), c) for (t, n, c), a in merged.items())
