"""Retention over the registry: the dry-run plan (every image, delete or keep, and why) and applying it.

The plan reads every repository a rule names (through the catalog's caches) and asks
the Swarm which images its services run. Applying deletes exactly the images a plan
computed a moment earlier listed, and only those a fresh plan still deletes with the same
tags: anything pushed, tagged or started since is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from berth.catalog.service import CatalogService, group_by_digest
from berth.errors import BerthError
from berth.registry.client import RegistryClient
from berth.storage.rules import Candidate, Decision, LastPulled, Rule, decide, rule_for, unknown_pulls
from berth.swarm.images import ImageUse, services_running

NO_SWARM = "the Swarm could not be asked which images its services run"


@dataclass(frozen=True)
class RetentionPlan:
    """Every image of the repositories the rules name: delete or keep, and why."""

    computed_at: datetime
    decisions: tuple[Decision, ...]
    unruled_repositories: int
    errors: tuple[str, ...] = ()

    @property
    def deletions(self) -> list[Decision]:
        return [d for d in self.decisions if d.delete]

    @property
    def kept(self) -> list[Decision]:
        return [d for d in self.decisions if not d.delete]

    @property
    def bytes_to_delete(self) -> int:
        return sum(d.candidate.size_bytes for d in self.deletions)

    def as_dict(self) -> dict:
        """The plan as a job stores it and the API shows it."""
        return {
            "computed_at": self.computed_at.isoformat().replace("+00:00", "Z"),
            "delete": [_decision(d) for d in self.deletions],
            "keep": [_decision(d) for d in self.kept],
            "bytes_to_delete": self.bytes_to_delete,
            "unruled_repositories": self.unruled_repositories,
            "errors": list(self.errors),
        }


def _decision(d: Decision) -> dict:
    c = d.candidate
    created = c.created.isoformat().replace("+00:00", "Z") if c.created else None
    return {"repository": c.repository, "digest": c.digest, "tags": list(c.tags), "size_bytes": c.size_bytes,
            "created": created, "rule": d.rule, "reason": d.reason}  # fmt: skip


def candidates(catalog: CatalogService, name: str, uses: list[ImageUse] | None, host: str) -> list[Candidate]:
    """The images of repository ``name`` as retention candidates."""
    found = []
    for group in group_by_digest(catalog.tags(name)):
        if group.image is None:
            continue  # unreadable: never a candidate for deletion
        running = bool(uses and services_running(uses, host, name, group.digest, group.tags))
        found.append(Candidate(name, group.digest, group.tags, group.image.size_bytes, group.image.created, running))
    return found


def build_plan(
    catalog: CatalogService,
    rules: tuple[Rule, ...],
    uses: list[ImageUse] | None,
    host: str,
    last_pulled: LastPulled = unknown_pulls,
    now: datetime | None = None,
) -> RetentionPlan:
    """The dry run: every image of every repository a rule names, with its decision."""
    now = now or datetime.now(UTC)
    names = catalog.repositories()
    ruled = [n for n in names if rule_for(rules, n) is not None]
    decisions: list[Decision] = []
    errors: list[str] = []
    for name in ruled:
        try:
            found = candidates(catalog, name, uses, host)
        except BerthError as exc:
            errors.append(f"{name}: {exc.message}")
            continue
        for decision in decide(rules, found, now, last_pulled):
            if decision.delete and uses is None:
                decision = Decision(decision.candidate, False, decision.rule, NO_SWARM)
            decisions.append(decision)
    return RetentionPlan(now, tuple(decisions), len(names) - len(ruled), tuple(errors))


def apply_plan(
    client: RegistryClient,
    catalog: CatalogService,
    planned: list[dict],
    fresh: RetentionPlan,
    log: Callable[[str], None],
) -> tuple[list[dict], list[dict]]:
    """Delete what ``planned`` lists and ``fresh`` still deletes with the same tags; (deleted, kept)."""
    still = {(d.candidate.repository, d.candidate.digest): d for d in fresh.deletions}
    deleted, kept = [], []
    for item in planned:
        now = still.get((item["repository"], item["digest"]))
        if now is None or list(now.candidate.tags) != list(item["tags"]):
            kept.append({**item, "reason": "changed since the dry run (pushed, tagged or started): kept"})
            log(f"Kept {item['repository']}@{item['digest'][:19]}: it changed since the dry run.")
            continue
        try:
            client.delete_manifest(item["repository"], item["digest"])
        except BerthError as exc:
            kept.append({**item, "reason": exc.message})
            log(f"Could not delete {item['repository']}@{item['digest'][:19]}: {exc.message}")
            continue
        finally:
            catalog.forget(item["repository"])
        deleted.append(item)
        log(f"Deleted {item['repository']}@{item['digest'][:19]} ({', '.join(item['tags'])}; {item['rule']}).")
    return deleted, kept
