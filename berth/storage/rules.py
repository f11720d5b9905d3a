"""Retention rules: which images of a repository to keep, and why; pure functions over candidates.

A policy is a list of rules read from YAML (``BERTH_RETENTION_RULES``)::

    rules:
      - repositories: "team/*"        # fnmatch pattern; the first rule that matches decides
        keep_newest: 5                # the N newest images by creation date
        keep_tags: "^(latest|v[0-9.]+)$"   # any tag matching this regex keeps its image
        keep_pulled_days: 30          # pulled in the last D days (only when pulls are known)

An image is kept when any clause of its rule keeps it, when a service on the Swarm runs it,
or when no rule names its repository; otherwise the rule deletes it. Every decision says why.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path

import yaml

from berth.errors import SettingError

SETTING = "BERTH_RETENTION_RULES"
KEYS = {"repositories", "keep_newest", "keep_tags", "keep_pulled_days"}

#: When an image of a repository was last pulled: a datetime, or None when nobody knows.
LastPulled = Callable[[str, str], datetime | None]


def unknown_pulls(repository: str, digest: str) -> datetime | None:
    """The default ``last_pulled`` source: Berth does not know pulls (the events package may)."""
    return None


@dataclass(frozen=True)
class Rule:
    """One retention rule for the repositories matching ``pattern``."""

    pattern: str
    keep_newest: int | None = None
    keep_tags: re.Pattern[str] | None = None
    keep_pulled_days: int | None = None

    def matches(self, repository: str) -> bool:
        """Whether this rule decides for ``repository``."""
        return fnmatchcase(repository, self.pattern)

    def describe(self) -> str:
        """The rule in one line, as dry runs show it."""
        parts = [f"keep {self.keep_newest} newest"] if self.keep_newest is not None else []
        parts += [f"keep tags /{self.keep_tags.pattern}/"] if self.keep_tags is not None else []
        parts += [f"keep pulled in {self.keep_pulled_days} d"] if self.keep_pulled_days is not None else []
        return f"{self.pattern}: {', '.join(parts) or 'keep nothing'}"


@dataclass(frozen=True)
class Candidate:
    """An image of a repository as retention sees it."""

    repository: str
    digest: str
    tags: tuple[str, ...]
    size_bytes: int
    created: datetime | None
    in_use: bool = False


@dataclass(frozen=True)
class Decision:
    """Keep or delete one image, the rule that decided and why."""

    candidate: Candidate
    delete: bool
    rule: str | None
    reason: str


def parse_policy(text: str) -> tuple[Rule, ...]:
    """The rules in a YAML document; ValueError with a plain reason when they are wrong."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ValueError(f"not valid YAML{f' (line {mark.line + 1})' if mark else ''}") from None
    if not isinstance(document, dict) or not isinstance(document.get("rules"), list):
        raise ValueError("must be a mapping with a list under 'rules'")
    return tuple(_rule(i + 1, item) for i, item in enumerate(document["rules"]))


def _rule(number: int, item: object) -> Rule:
    if not isinstance(item, dict):
        raise ValueError(f"rule {number} is not a mapping")
    unknown = set(item) - KEYS
    if unknown:
        raise ValueError(f"rule {number} has unknown keys: {', '.join(sorted(map(str, unknown)))}")
    pattern = item.get("repositories")
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"rule {number} needs 'repositories', a pattern like team/*")
    counts = {}
    for key in ("keep_newest", "keep_pulled_days"):
        value = item.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise ValueError(f"rule {number}: {key} must be a whole number >= 0")
        counts[key] = value
    regex = item.get("keep_tags")
    try:
        compiled = re.compile(regex) if regex is not None else None
    except (re.error, TypeError):
        raise ValueError(f"rule {number}: keep_tags is not a regular expression") from None
    return Rule(pattern, counts["keep_newest"], compiled, counts["keep_pulled_days"])


def load_policy(path: Path) -> tuple[Rule, ...]:
    """The rules in the file ``path``; SettingError naming BERTH_RETENTION_RULES when they are wrong."""
    try:
        return parse_policy(Path(path).read_text())
    except OSError as exc:
        raise SettingError(SETTING, f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise SettingError(SETTING, f"{path}: {exc}") from None


def rule_for(rules: Iterable[Rule], repository: str) -> Rule | None:
    """The first rule that names ``repository``, if any."""
    return next((rule for rule in rules if rule.matches(repository)), None)


def decide(
    rules: tuple[Rule, ...], candidates: list[Candidate], now: datetime, last_pulled: LastPulled = unknown_pulls
) -> list[Decision]:
    """Keep or delete each image of one repository (all ``candidates`` share it)."""
    if not candidates:
        return []
    rule = rule_for(rules, candidates[0].repository)
    if rule is None:
        return [Decision(c, False, None, "no rule names this repository") for c in candidates]
    dated = sorted((c for c in candidates if c.created), key=lambda c: c.created or now, reverse=True)
    newest = {c.digest for c in dated[: rule.keep_newest or 0]}
    return [_decide_one(rule, c, newest, now, last_pulled) for c in candidates]


def _decide_one(rule: Rule, c: Candidate, newest: set[str], now: datetime, last_pulled: LastPulled) -> Decision:
    name = rule.describe()
    if c.in_use:
        return Decision(c, False, name, "a service on the Swarm runs it")
    if c.created is None:
        return Decision(c, False, name, "its creation date is unknown")
    if c.digest in newest:
        return Decision(c, False, name, f"among the {rule.keep_newest} newest")
    if rule.keep_tags is not None:
        kept = [t for t in c.tags if rule.keep_tags.search(t)]
        if kept:
            return Decision(c, False, name, f"tag {kept[0]} matches /{rule.keep_tags.pattern}/")
    if rule.keep_pulled_days is not None:
        pulled = last_pulled(c.repository, c.digest)
        if pulled is not None and now - pulled <= timedelta(days=rule.keep_pulled_days):
            return Decision(c, False, name, f"pulled {pulled:%Y-%m-%d}, within {rule.keep_pulled_days} d")
    return Decision(c, True, name, "no clause of the rule keeps it")
