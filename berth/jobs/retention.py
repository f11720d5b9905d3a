"""The retention job: a dry run of the rules, or applying exactly what a dry run listed.

Options: ``dry_run`` (only plan), ``plan_job`` (apply the plan stored by that earlier
dry-run job, as the /retention page does after the admin read it). Without ``plan_job``
the job plans first and applies what it just planned. Either way each image is deleted only
when a fresh plan still deletes it with the same tags, so anything pushed, tagged or
started on the Swarm since the dry run is kept. The plan and what happened to each image
land in the job's result; every job is audited by the runner.
"""

from __future__ import annotations

from datetime import UTC, datetime

from berth.catalog.service import CatalogService
from berth.config import Settings
from berth.errors import JobFailed, NotFound
from berth.jobs.kinds import JobKind
from berth.jobs.runner import JobDefinition, Step, StepContext
from berth.registry.client import RegistryClient
from berth.storage.rules import LastPulled, load_policy

PLAN_MAX_AGE_SECONDS = 3600


class _Retention:
    """One retention run."""

    def __init__(self, settings: Settings, options: dict):
        self.settings = settings
        self.options = options
        self._catalog: CatalogService | None = None
        self._client: RegistryClient | None = None

    def steps(self) -> list[Step]:
        steps = [Step("Plan what the rules delete", self.plan)]
        if not self.options.get("dry_run"):
            steps.append(Step("Delete the planned images", self.apply))
        return steps

    def catalog(self) -> CatalogService:
        """A catalog over a registry client that may delete (this job is an admin action)."""
        if self._catalog is None:
            from berth.db import Database
            from berth.services import registry_client

            self._client = client = registry_client(self.settings, delete=True)
            s = self.settings
            self._catalog = CatalogService(client, Database(s.database_path), s.cache_ttl, s.fetch_workers)
        return self._catalog

    def fresh_plan(self):
        from berth.storage.deletion import swarm_uses
        from berth.storage.retention import build_plan

        if self.settings.retention_rules is None:
            raise JobFailed("BERTH_RETENTION_RULES is not set: there are no rules to apply.")
        rules = load_policy(self.settings.retention_rules)
        uses = swarm_uses(self.settings)
        host = self.settings.registry_host
        return build_plan(self.catalog(), rules, uses, host, self.last_pulled()), uses

    def last_pulled(self) -> LastPulled:
        """When an image was last pulled, from the registry's events (None where no pull was seen)."""
        from berth.db import Database
        from berth.events.store import EventStore

        s = self.settings
        return EventStore(Database(s.database_path), s.events_retention_days).last_pulled

    def plan(self, ctx: StepContext) -> None:
        source = ctx.options.get("plan_job")
        if source:
            planned = self.stored_plan(ctx, int(source))
            ctx.log(f"Applying the plan of dry-run job {source}, as the admin read it: {len(planned)} images.")
            return
        plan, uses = self.fresh_plan()
        ctx.result["plan"] = plan.as_dict()
        if uses is None:
            ctx.log("WARNING: the Swarm could not be asked which images run; nothing will be deleted.")
        for d in plan.deletions:
            c = d.candidate
            ctx.log(f"delete {c.repository}@{c.digest[:19]} ({', '.join(c.tags)}; {c.size_bytes:,} B): {d.rule}")
        ctx.log(f"{len(plan.deletions)} images to delete ({plan.bytes_to_delete:,} bytes), {len(plan.kept)} kept;")
        ctx.log(f"  {plan.unruled_repositories} repositories no rule names are left alone.")
        for problem in plan.errors:
            ctx.log(f"  not read: {problem}")

    def apply(self, ctx: StepContext) -> None:
        from berth.storage.retention import apply_plan

        planned = ctx.result["plan"]["delete"]
        fresh, _ = self.fresh_plan()
        catalog = self.catalog()
        deleted, kept = apply_plan(catalog.client, catalog, planned, fresh, ctx.log)
        ctx.result.update(deleted=deleted, not_deleted=kept, bytes_deleted=sum(i["size_bytes"] for i in deleted))
        ctx.log(f"Deleted {len(deleted)} images; {len(kept)} kept. Run garbage collection to free their blobs.")
        refused = [i for i in kept if "refused to delete" in i.get("reason", "")]
        if refused:
            raise JobFailed(refused[0]["reason"])

    def stored_plan(self, ctx: StepContext, job_id: int) -> list[dict]:
        try:
            source = ctx.store.get(job_id)
        except NotFound:
            raise JobFailed(f"There is no dry-run job {job_id}.") from None
        if source.kind != JobKind.RETENTION or source.status != "succeeded" or "plan" not in source.result:
            raise JobFailed(f"Job {job_id} is not a finished retention dry run.")
        age = (datetime.now(UTC) - (source.finished_at or source.created_at)).total_seconds()
        if age > PLAN_MAX_AGE_SECONDS:
            raise JobFailed(f"The dry run of job {job_id} is {age / 60:.0f} minutes old; run a new one.")
        ctx.result["plan"] = source.result["plan"]
        return source.result["plan"]["delete"]


def retention_kind(settings: Settings) -> JobDefinition:
    """The ``retention`` job kind for ``settings``."""
    return JobDefinition(JobKind.RETENTION, lambda options: _Retention(settings, options).steps())
