"""The garbage collection job: read-only registry, the registry's own ``garbage-collect``, read-write again.

Steps: look at the service (its config.yml reference, image, binary, node) and count the
blobs on disk; switch the registry to read-only through a new versioned config or secret
(:mod:`berth.swarm.maintenance`) and wait for convergence; run ``garbage-collect
[--delete-untagged] [--dry-run] CONFIG`` as a one-off Swarm task on a registry node with the
service's mounts and config (:mod:`berth.swarm.oneoff`), its log in the job's; switch back
and wait; push the self-test image; report blobs and bytes before and after.

Any failure puts the original config back (:func:`restore`): ``ctx.result["readonly"]``
holds what is needed (references and names, never config content). A dry run leaves the
registry read-write: it deletes nothing.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import PurePosixPath

import docker

from berth.config import Settings
from berth.errors import JobFailed
from berth.jobs import selftest
from berth.jobs.checks import connect
from berth.jobs.kinds import JobKind
from berth.jobs.runner import JobDefinition, Step, StepContext
from berth.storage.disk import blob_usage
from berth.swarm import deploy as sd
from berth.swarm import maintenance, oneoff
from berth.swarm.inspect import find_service, registry_config_path

BINARIES = ("docker-registry", "registry")


def registry_binary(settings: Settings, client, service: dict) -> str:
    """The registry binary: BERTH_REGISTRY_BINARY, the service's command, the image's entrypoint, else /bin/registry."""
    if settings.registry_binary:
        return settings.registry_binary
    container = service["Spec"]["TaskTemplate"]["ContainerSpec"]
    for words in (container.get("Command") or [], _entrypoint(client, container["Image"])):
        if words and PurePosixPath(words[0]).name in BINARIES:
            return words[0]
    return "/bin/registry"  # registry:2 (its entrypoint is a shell script that runs /bin/registry)


def _entrypoint(client, image: str) -> list[str]:
    try:
        return list(client.api.inspect_image(image)["Config"].get("Entrypoint") or [])
    except Exception:  # noqa: BLE001 - an image the manager has not pulled: fall back to the default
        return []


class _Collection:
    """One GC run; what the steps decided, handed from step to step."""

    def __init__(self, settings: Settings, options: dict):
        self.settings = settings
        self.dry_run = bool(options.get("dry_run"))
        self.delete_untagged = bool(options.get("delete_untagged"))
        self.client: docker.DockerClient | None = None
        self.service: dict = {}

    def steps(self) -> list[Step]:
        steps = [Step("Check the registry service", self.check)]
        if not self.dry_run:
            steps += [Step("Switch the registry to read-only", self.readonly), Step("Wait for convergence", self.wait)]
        steps.append(Step("Run garbage-collect", self.collect))
        if not self.dry_run:
            steps += [Step("Switch back to read-write", self.readwrite), Step("Verify a push works", self.push)]
        return [*steps, Step("Report what was freed", self.report)]

    def check(self, ctx: StepContext) -> None:
        from berth.health.probes import registry_config_yaml

        s = self.settings
        self.client = client = connect(s)
        service = find_service(client, s.swarm_service)
        if service is None:
            raise JobFailed(f"There is no service {s.swarm_service}; run the setup job first.")
        self.service = service
        current = maintenance.config_reference(service)
        if not self.dry_run and registry_config_yaml(s) is None:
            raise JobFailed(f"Berth cannot read the registry's config.yml ({current.kind} {current.name}); run setup.")
        binary = registry_binary(s, client, service)
        before = blob_usage(s.nfs_path)
        ctx.result.update(blobs_before=before.blobs, blob_bytes_before=before.blob_bytes,
                          free_bytes_before=before.free_bytes, dry_run=self.dry_run, binary=binary)  # fmt: skip
        ctx.log(f"The registry reads {current.target} from the Swarm {current.kind} {current.name}.")
        ctx.log(f"Garbage collection runs {binary} from {service['Spec']['TaskTemplate']['ContainerSpec']['Image']}.")
        ctx.log(f"{before.blobs} blobs, {before.blob_bytes:,} bytes under {s.nfs_path}.")

    def readonly(self, ctx: StepContext) -> None:
        from berth.health.probes import registry_config_yaml

        s, client = self.settings, self.client
        current = maintenance.config_reference(self.service)
        text = registry_config_yaml(s)
        assert text is not None and client is not None  # checked in the first step
        ctx.result["readonly"] = {"kind": current.kind, "target": current.target, "original": current.reference}
        ctx.result["update_sent_at"] = sd.now_utc().isoformat()
        new = maintenance.switch_to(client, self.service, current, maintenance.with_readonly(text), s.swarm_service)
        ctx.result["readonly"]["name"] = new.get("ConfigName") or new.get("SecretName")
        ctx.log(f"Rolled the service onto the {current.kind} {ctx.result['readonly']['name']}: read-only.")

    def wait(self, ctx: StepContext) -> None:
        assert self.client is not None
        since = datetime.fromisoformat(ctx.result["update_sent_at"])
        took = sd.wait_converged(
            self.client, self.service["ID"], timeout=self.settings.swarm_converge_timeout, since=since, log=ctx.log
        )
        ctx.log(f"Converged in {took:.1f} s: pulls are served, pushes and deletes are refused.")

    def collect(self, ctx: StepContext) -> None:
        client = self.client
        assert client is not None
        service = client.api.inspect_service(self.service["ID"])
        flags = (["--delete-untagged"] if self.delete_untagged else []) + (["--dry-run"] if self.dry_run else [])
        command = [ctx.result["binary"], "garbage-collect", *flags, registry_config_path(service)]
        node = oneoff.running_node(client, service["ID"])
        name = f"{self.settings.swarm_service}-gc-{ctx.job_id}"
        ctx.log(f"Running {' '.join(command)} as the one-off service {name} on node {node or '(any)'}:")
        template = oneoff.task_template_like(service, command, node)
        ended = oneoff.run(
            client, name, template, timeout=self.settings.gc_timeout, log=ctx.log,
            on_created=lambda _: ctx.result.update(gc_service=name),
        )  # fmt: skip
        if ended.state != "complete" or ended.exit_code not in (0, None):
            raise JobFailed(f"garbage-collect ended {ended.state} (exit {ended.exit_code}): {ended.message}")
        ctx.log(f"garbage-collect finished ({ended.lines} lines of output).")

    def readwrite(self, ctx: StepContext) -> None:
        restore_readwrite(self.settings, ctx)
        ctx.result["restored"] = True

    def push(self, ctx: StepContext) -> None:
        done = selftest.run_as_berth(self.settings)
        ctx.log(f"Pushed {done.reference} ({done.manifest_digest}) and read it back: the registry takes pushes.")

    def report(self, ctx: StepContext) -> None:
        after = blob_usage(self.settings.nfs_path)
        freed = ctx.result["blob_bytes_before"] - after.blob_bytes
        before_free = ctx.result.get("free_bytes_before")
        ctx.result.update(blobs_after=after.blobs, blob_bytes_after=after.blob_bytes, bytes_freed=freed,
                          free_bytes_after=after.free_bytes)  # fmt: skip
        ctx.log(f"Blobs: {ctx.result['blobs_before']} before, {after.blobs} after; {freed:,} bytes freed.")
        if before_free is not None and after.free_bytes is not None:
            ctx.log(f"Free space on {self.settings.nfs_path}: {before_free:,} -> {after.free_bytes:,} bytes.")


def restore_readwrite(settings: Settings, ctx: StepContext) -> None:
    """Put the service's original config back (when it was switched), wait for it, remove the read-only object."""
    state = ctx.result.get("readonly")
    if not state or ctx.result.get("restored"):
        return
    client = connect(settings)
    service = find_service(client, settings.swarm_service)
    if service is None:
        raise JobFailed(f"The service {settings.swarm_service} is gone; run setup.")
    original = maintenance.ConfigReference(state["kind"], state["target"], state["original"])
    since = sd.now_utc()
    if maintenance.put_back(client, service["ID"], original):
        ctx.log(f"Rolled the service back onto the {original.kind} {original.name}: read-write.")
    timeout = max(settings.swarm_converge_timeout, sd.RESTORE_MIN_SECONDS)
    took = sd.wait_converged(client, service["ID"], timeout=timeout, since=since, restore=True, log=ctx.log)
    ctx.log(f"The service runs its read-write config again ({took:.1f} s).")
    ctx.result["restored"] = True
    if state.get("name"):
        problem = sd.remove_object(client, state["kind"], state["name"])
        ctx.log(f"Removed {state['name']}." if problem is None else f"Kept {state['name']}: {problem}")


def restore(settings: Settings, ctx: StepContext, error: Exception) -> None:
    """After any failure: the GC service gone, the registry read-write again."""
    name = ctx.result.get("gc_service")
    if name:
        client = connect(settings)
        found = find_service(client, name)
        if found is not None:
            client.api.remove_service(found["ID"])
            ctx.log(f"Removed the one-off service {name}.")
    if ctx.result.get("readonly") and not ctx.result.get("restored"):
        restore_readwrite(settings, ctx)
    else:
        ctx.log("The registry was not switched to read-only; nothing to put back.")


def gc_kind(settings: Settings) -> JobDefinition:
    """The ``gc`` job kind for ``settings``."""
    return JobDefinition(
        JobKind.GC, lambda options: _Collection(settings, options).steps(), lambda ctx, exc: restore(settings, ctx, exc)
    )
