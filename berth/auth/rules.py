"""Who may pull, push and delete which repositories: ordered access rules, first match wins.

The rules file (``BERTH_ACCESS_RULES``, YAML) follows cesanta/docker_auth's ACL: an
ordered list of ``{match: {...}, actions: [...], comment: ...}``. Semantics:

- ``match`` holds *who* and *what*. Who: ``account``/``accounts`` (usernames),
  ``group``/``groups`` (a DN, or a CN such as ``registry-admins``), ``role``
  (``developer``, ``ops`` or ``admin``; a role includes the higher ones). Several
  values of one key: any may match; several keys: all must. No *who* key: any
  logged-in user. Rules never match anonymous requests (see ``BERTH_ANONYMOUS_PULL``).
- What: ``type`` (``repository``, the default, or ``registry`` with ``name: catalog``)
  and ``name``, a glob where ``*`` matches any characters *including* ``/`` and
  ``{username}`` is the requester's username (a rule with ``{username}`` never matches
  a username that is not a valid repository path component).
- For each requested resource the **first** rule that matches both decides; its
  ``actions`` (``pull``, ``push``, ``delete``, ``*`` = all) are intersected with what was
  asked. An empty ``actions`` list is an explicit denial. No matching rule: nothing.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from berth.auth.scope import CATALOG, REGISTRY, REPOSITORY, Scope
from berth.errors import SettingError
from berth.roles import Role

SETTING = "BERTH_ACCESS_RULES"
MAX_FILE_BYTES = 1024 * 1024
MAX_RULES = 1000
ALL_REPOSITORY_ACTIONS = frozenset({"pull", "push", "delete"})
_COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z")
_MATCH_KEYS = {"account", "accounts", "group", "groups", "role", "type", "name"}
_RULE_KEYS = {"match", "actions", "comment"}

DEFAULT_RULES: list[dict] = [
    {"comment": "admins: everything", "match": {"role": "admin"}, "actions": ["*"]},
    {"comment": "admins: the catalog", "match": {"role": "admin", "type": "registry"}, "actions": ["*"]},
    {"comment": "ops: pull everything", "match": {"role": "ops"}, "actions": ["pull"]},
    {"comment": "ops: the catalog", "match": {"role": "ops", "type": "registry"}, "actions": ["*"]},
    {"comment": "developers: their own namespace", "match": {"name": "{username}/*"}, "actions": ["pull", "push"]},
    {"comment": "developers: pull everything", "match": {"name": "*"}, "actions": ["pull"]},
]


def group_cn(dn: str) -> str | None:
    """The CN of a group DN (its first RDN when that is ``cn=``), lower-cased."""
    first = dn.split(",", 1)[0]
    attribute, _, value = first.partition("=")
    return value.strip().lower() if attribute.strip().lower() == "cn" else None


@dataclass(frozen=True)
class Principal:
    """Who asks for a token: a directory user, or nobody (``username`` None)."""

    username: str | None
    role: Role | None = None
    groups: frozenset[str] = frozenset()  # normalised group DNs

    @property
    def anonymous(self) -> bool:
        """Whether no one logged in."""
        return self.username is None


@dataclass(frozen=True)
class Rule:
    """One validated rule from the file (or the defaults)."""

    number: int
    comment: str
    accounts: frozenset[str]
    groups: frozenset[str]
    role: Role | None
    type: str
    name: str
    actions: frozenset[str]

    def applies_to(self, who: Principal) -> bool:
        """Whether this rule's *who* part matches ``who``."""
        if who.anonymous or who.username is None:
            return False
        if self.accounts and who.username.lower() not in self.accounts:
            return False
        if self.role is not None and (who.role is None or who.role < self.role):
            return False
        if self.groups:
            names = set(who.groups) | {cn for cn in map(group_cn, who.groups) if cn}
            return bool(self.groups & names)
        return True

    def pattern_for(self, who: Principal) -> str | None:
        """The name glob with ``{username}`` filled in, or None when it cannot be."""
        if "{username}" not in self.name:
            return self.name
        username = (who.username or "").lower()
        return self.name.replace("{username}", username) if _COMPONENT_RE.match(username) else None

    def covers(self, who: Principal, scope: Scope) -> bool:
        """Whether this rule decides ``scope`` for ``who``."""
        if self.type != scope.type or not self.applies_to(who):
            return False
        pattern = self.pattern_for(who)
        return pattern is not None and fnmatch.fnmatchcase(scope.name, pattern)

    def allowed(self) -> frozenset[str]:
        """The actions this rule grants, ``*`` expanded."""
        if self.type == REPOSITORY and ("*" in self.actions or self.actions >= ALL_REPOSITORY_ACTIONS):
            return ALL_REPOSITORY_ACTIONS | {"*"}  # clients ask "*" to delete (skopeo); it means all three
        return self.actions


class AccessRules:
    """The ordered rules plus the anonymous-pull switch; decides grants."""

    def __init__(self, rules: Iterable[Rule], anonymous_pull: bool = False):
        self.rules = tuple(rules)
        self.anonymous_pull = anonymous_pull

    def decide(self, who: Principal, scope: Scope) -> Scope:
        """``scope`` with only the actions ``who`` may have (possibly none)."""
        if who.anonymous:
            allowed = frozenset({"pull"}) if self.anonymous_pull and scope.type == REPOSITORY else frozenset()
            return scope.with_actions(scope.actions & allowed)
        rule = next((r for r in self.rules if r.covers(who, scope)), None)
        return scope.with_actions(scope.actions & rule.allowed() if rule else frozenset())

    def for_principal(self, who: Principal) -> list[Rule]:
        """The rules that apply to ``who``, in order (for the /access page)."""
        return [r for r in self.rules if r.applies_to(who)]


def load_rules(path: Path | None, anonymous_pull: bool = False) -> AccessRules:
    """The rules in ``path`` (the defaults when None); SettingError naming the bad rule."""
    if path is None:
        return AccessRules(parse_rules(DEFAULT_RULES), anonymous_pull)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise SettingError(SETTING, f"{path} is larger than {MAX_FILE_BYTES} bytes")
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingError(SETTING, f"cannot read {path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise SettingError(SETTING, f"{path} is not valid YAML{where}") from None
    if isinstance(data, dict) and set(data) == {"rules"}:
        data = data["rules"]
    if not isinstance(data, list) or not data:
        raise SettingError(SETTING, f"{path} must hold a non-empty list of rules (or rules: [...])")
    return AccessRules(parse_rules(data), anonymous_pull)


def parse_rules(items: list) -> list[Rule]:
    """Validate rule dictionaries into Rules; SettingError naming the first bad one."""
    if len(items) > MAX_RULES:
        raise SettingError(SETTING, f"more than {MAX_RULES} rules")
    return [_parse_rule(number, item) for number, item in enumerate(items, start=1)]


def _fail(number: int, item: object, problem: str) -> SettingError:
    comment = item.get("comment") if isinstance(item, dict) else None
    label = f"rule {number}" + (f" ({str(comment)[:60]})" if comment else "")
    return SettingError(SETTING, f"{label}: {problem}")


def _strings(number: int, item: dict, match: dict, *keys: str) -> frozenset[str]:
    values: list = []
    for key in keys:
        value = match.get(key, [])
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise _fail(number, item, f"{key} must be a string or a list of strings")
        values += value
    return frozenset(values)


def _parse_rule(number: int, item: object) -> Rule:
    if not isinstance(item, dict) or set(item) - _RULE_KEYS or "actions" not in item:
        raise _fail(number, item, "must be a mapping with actions, and optionally match and comment")
    match = item.get("match") or {}
    if not isinstance(match, dict) or set(match) - _MATCH_KEYS:
        raise _fail(number, item, f"match may only hold {', '.join(sorted(_MATCH_KEYS))}")
    role = match.get("role")
    if role is not None and (not isinstance(role, str) or role.upper() not in Role.__members__):
        raise _fail(number, item, "role must be developer, ops or admin")
    kind = match.get("type", REPOSITORY)
    name = match.get("name", "*" if kind == REPOSITORY else CATALOG)
    if kind not in (REPOSITORY, REGISTRY) or not isinstance(name, str) or not name:
        raise _fail(number, item, "type must be repository or registry, name a non-empty glob")
    if kind == REGISTRY and name != CATALOG:
        raise _fail(number, item, "the only registry resource is name: catalog")
    actions = item["actions"]
    valid = {"pull", "push", "delete", "*"} if kind == REPOSITORY else {"*"}
    if not isinstance(actions, list) or not set(actions) <= valid:
        raise _fail(number, item, f"actions must be a list of {', '.join(sorted(valid))}")
    groups = _strings(number, item, match, "group", "groups")
    return Rule(
        number=number,
        comment=str(item.get("comment") or ""),
        accounts=frozenset(a.lower() for a in _strings(number, item, match, "account", "accounts")),
        groups=frozenset(",".join(p.strip().lower() for p in g.split(",")) for g in groups),
        role=Role[role.upper()] if role else None,
        type=kind,
        name=name,
        actions=frozenset(actions),
    )
