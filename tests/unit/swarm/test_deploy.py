"""The registry's desired service spec: replicas spread one per node, the listen address they need."""

from __future__ import annotations

import pytest

from berth.config import Settings
from berth.registry.config import listen_address
from berth.swarm.deploy import desired_spec, replica_count
from tests.unit.test_config import env

CONFIG_REF = {"File": {"Name": "/etc/docker/registry/config.yml"}, "SecretID": "c", "SecretName": "registry-config-1"}


def settings(**changes: str) -> Settings:
    return Settings.from_env(env(BERTH_DATA_DIR="/tmp/berth-unit", **changes))


def test_replicas_unset_keep_the_current_count() -> None:
    current = desired_spec(None, settings(), [CONFIG_REF])
    assert replica_count(current) == 1
    current["Mode"] = {"Replicated": {"Replicas": 3}}  # scaled by hand
    again = desired_spec(current, settings(), [CONFIG_REF])
    assert replica_count(again) == 3 and again["TaskTemplate"]["Placement"]["MaxReplicas"] == 1


@pytest.mark.parametrize("replicas", [1, 2, 4])
def test_replicas_setting_is_applied_and_spread(replicas: int) -> None:
    spec = desired_spec(None, settings(BERTH_REGISTRY_REPLICAS=str(replicas)), [CONFIG_REF])
    assert spec["Mode"] == {"Replicated": {"Replicas": replicas}}
    assert spec["TaskTemplate"].get("Placement", {}).get("MaxReplicas") == (1 if replicas > 1 else None)
    assert spec["UpdateConfig"]["Parallelism"] == 1


def test_host_network_replicas_roll_stop_first() -> None:
    spec = desired_spec(None, settings(BERTH_REGISTRY_REPLICAS="2", BERTH_SWARM_HOST_NETWORK="true"), [CONFIG_REF])
    assert spec["UpdateConfig"]["Order"] == "stop-first" and spec["EndpointSpec"] == {"Mode": "dnsrr"}


@pytest.mark.parametrize(
    ("changes", "address"),
    [
        ({"BERTH_SWARM_HOST_NETWORK": "true"}, "127.0.0.1:5000"),
        ({"BERTH_SWARM_HOST_NETWORK": "true", "BERTH_REGISTRY_REPLICAS": "1"}, "127.0.0.1:5000"),
        # behind a balancer: the URL's IP is the balancer's, each node binds all its addresses
        ({"BERTH_SWARM_HOST_NETWORK": "true", "BERTH_REGISTRY_REPLICAS": "2"}, ":5000"),
        ({"BERTH_REGISTRY_REPLICAS": "2"}, ":5000"),
    ],
)
def test_listen_address(changes: dict[str, str], address: str) -> None:
    assert listen_address(settings(**changes)) == address


def test_replicas_must_be_positive() -> None:
    from berth.errors import SettingError

    with pytest.raises(SettingError, match="BERTH_REGISTRY_REPLICAS"):
        settings(BERTH_REGISTRY_REPLICAS="0")
