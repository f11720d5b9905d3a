"""One-off tasks on the Swarm: a ``replicated-job`` service that runs once on a chosen node, its log, its end.

Garbage collection runs the registry's own ``garbage-collect`` this way: the registry
service's image, mounts, configs, secrets and networks, pinned to the node of a running
registry task. The caller gets each log line as it comes; a service removed before its
task ended (an operator, or a test, killing it) is a plain failure, not a hang.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import docker
import docker.errors

from berth.errors import JobFailed

LABEL = "berth.oneoff"
DONE = {"complete", "failed", "rejected", "shutdown", "orphaned", "remove"}


@dataclass(frozen=True)
class OneOffResult:
    """How the task ended."""

    state: str
    exit_code: int | None
    message: str
    lines: int


def task_template_like(service: dict, command: list[str], node_id: str | None) -> dict:
    """A task template running ``command`` with the registry service's image, mounts, configs, secrets."""
    template = service["Spec"]["TaskTemplate"]
    container = template["ContainerSpec"]
    spec: dict = {
        "ContainerSpec": {
            "Image": container["Image"],
            "Command": command,
            "Args": [],
            **{k: container[k] for k in ("Mounts", "Configs", "Secrets", "User", "Env") if container.get(k)},
        },
        "RestartPolicy": {"Condition": "none"},
    }
    if node_id:
        spec["Placement"] = {"Constraints": [f"node.id=={node_id}"]}
    if template.get("Networks"):
        spec["Networks"] = template["Networks"]
    return spec


def running_node(client: docker.DockerClient, service_id: str) -> str | None:
    """The node of a running task of the service (the first), if any."""
    tasks = client.api.tasks(filters={"service": service_id, "desired-state": "running"})
    running = [t for t in tasks if t["Status"]["State"] == "running"]
    return running[0].get("NodeID") if running else None


def run(
    client: docker.DockerClient,
    name: str,
    template: dict,
    *,
    timeout: float,
    log: Callable[[str], None],
    on_created: Callable[[str], None] | None = None,
) -> OneOffResult:
    """Create the one-off service ``name``, follow its log, wait for its task to end; remove it after."""
    created = client.api.create_service(
        template, name=name, labels={LABEL: "true"}, mode={"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}}
    )
    service_id = created["ID"]
    if on_created:
        on_created(service_id)
    follower = _Follower(client, service_id, log)
    try:
        task = _wait(client, service_id, timeout)
        follower.start()
        follower.join(10)
        status = task["Status"]
        code = (status.get("ContainerStatus") or {}).get("ExitCode")
        return OneOffResult(status["State"], code, status.get("Err") or status.get("Message", ""), follower.count)
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_service(service_id)


def _wait(client: docker.DockerClient, service_id: str, timeout: float) -> dict:
    began = time.monotonic()
    while True:
        try:
            client.api.inspect_service(service_id)
            # the engine answers 404 here too when the service goes between these two calls
            tasks = client.api.tasks(filters={"service": service_id})
        except docker.errors.NotFound:
            raise JobFailed("The garbage-collect task was removed before it finished.") from None
        ended = [t for t in tasks if t["Status"]["State"] in DONE]
        if ended:
            return max(ended, key=lambda t: t["Version"]["Index"])
        if time.monotonic() - began > timeout:
            raise JobFailed(f"The garbage-collect task did not finish within {timeout:g} s.")
        time.sleep(0.3)


class _Follower(threading.Thread):
    """Reads the one-off service's log into ``log``: the first lines in full, then a count."""

    SHOWN = 200

    def __init__(self, client: docker.DockerClient, service_id: str, log: Callable[[str], None]):
        super().__init__(daemon=True, name="berth-oneoff-log")
        self._client, self._service_id, self._log = client, service_id, log
        self.count = 0

    def run(self) -> None:
        try:
            stream = self._client.api.service_logs(self._service_id, stdout=True, stderr=True, follow=False)
            buffer = b""
            for chunk in stream:
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    self._line(line)
            if buffer:
                self._line(buffer)
        except (docker.errors.DockerException, OSError) as exc:
            self._log(f"  (its log could not be read further: {exc})")
        if self.count > self.SHOWN:
            self._log(f"  … {self.count - self.SHOWN} more lines not shown.")

    def _line(self, raw: bytes) -> None:
        self.count += 1
        if self.count <= self.SHOWN:
            self._log("  " + raw.decode(errors="replace").rstrip()[:300])
