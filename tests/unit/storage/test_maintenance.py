"""The read-only switch's config text, the job options the API accepts, the daily schedule."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml

from berth.errors import JobFailed
from berth.jobs.kinds import JobKind
from berth.jobs.schedule import due
from berth.swarm.maintenance import config_reference, is_readonly, with_readonly

CONFIG = "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/registry\n  delete:\n    enabled: true\n"


def test_readonly_keeps_everything_else() -> None:
    text = with_readonly(CONFIG)
    config = yaml.safe_load(text)
    assert is_readonly(config) and config["storage"]["delete"] == {"enabled": True}
    assert not is_readonly(yaml.safe_load(with_readonly(text, enabled=False)))
    assert not is_readonly(yaml.safe_load(CONFIG)) and not is_readonly(None)
    with pytest.raises(JobFailed):
        with_readonly("version: 0.1\n")


@pytest.mark.parametrize("kind", ["config", "secret"])
def test_the_reference_of_either_kind_is_found(kind: str) -> None:
    key = "Configs" if kind == "config" else "Secrets"
    ref = {"File": {"Name": "/etc/docker/registry/config.yml"}, f"{kind.title()}Name": "x"}
    service = {"Spec": {"TaskTemplate": {"ContainerSpec": {key: [ref]}}}}
    found = config_reference(service)
    assert (found.kind, found.name) == (kind, "x")
    with pytest.raises(JobFailed, match="not a Swarm config or secret"):
        config_reference({"Spec": {"TaskTemplate": {"ContainerSpec": {}}}})


def test_job_options_per_kind() -> None:
    assert JobKind.GC.options(dry_run=True) == {"delete_untagged": False, "dry_run": True}
    assert JobKind.RETENTION.options(delete_untagged=True) == {"dry_run": False}
    assert JobKind.SETUP.options(True) == {"confirm": True}
    assert JobKind.ROTATE_CERTS.options(False) == {}


def test_the_daily_run_is_due_once_after_its_time() -> None:
    now = datetime(2024, 6, 1, 3, 5, tzinfo=UTC)
    assert due("03:00", now, None)
    assert not due("03:00", now, datetime(2024, 6, 1, 3, 1, tzinfo=UTC))
    assert due("03:00", now, datetime(2024, 5, 31, 3, 1, tzinfo=UTC))
    assert not due("04:00", now, None)
