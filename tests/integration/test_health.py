"""/health, /api/v1/status and /metrics against the real stack."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from berth.health.monitor import COMPONENTS
from tests.helpers import DEMO, make_app

pytestmark = pytest.mark.stack


@pytest.mark.parametrize("username", sorted(DEMO))
def test_status_api_by_role(client, username):
    response = client.get("/api/v1/status", auth=(username, DEMO[username][0]))
    if DEMO[username][1] == "developer":
        assert response.status_code == 403
        return
    body = response.get_json()
    assert set(body) == set(COMPONENTS)
    for part in body.values():
        assert {"ok", "error", "findings"} <= set(part)
        assert isinstance(part["ok"], bool)
        for finding in part["findings"]:
            assert finding["level"] in ("ok", "info", "warning", "critical") and finding["message"]


def test_registry_and_certs_panels_on_devstack(client):
    body = client.get("/api/v1/status", auth=("olivia", "olivia-pw")).get_json()
    registry = body["registry"]
    assert registry["details"]["api_version"] == "registry/2.0"
    # the devstack registry lets anyone in: the one critical finding says so, nothing else is wrong
    critical = [f["message"] for f in registry["findings"] if f["level"] == "critical"]
    assert critical == ["The registry accepts pushes from anyone who reaches it: it has no auth section."]
    assert registry["details"]["served_certificate_verified"] is True
    assert "127.0.0.1" in registry["details"]["served_certificate"]["sans"]
    assert body["certs"]["ok"]


def test_health_page_for_ops_shows_four_panels(client, auth):
    auth.login("olivia")
    page = client.get("/health").get_data(as_text=True)
    for name in COMPONENTS:
        assert f'id="panel-{name}"' in page and f'hx-get="/health/panels/{name}"' in page
    fragment = client.get("/health/panels/registry", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert fragment.startswith("\n") or fragment.lstrip().startswith("<section")
    assert client.get("/health/panels/nope").status_code == 404


def test_developer_sees_summary_but_not_health(client, auth):
    auth.login("dave")
    assert client.get("/health").status_code == 403
    summary = client.get("/health/summary").get_data(as_text=True)
    assert "Registry:" in summary and "working" in summary  # one plain line, no NFS paths
    assert "NFS mount" not in summary and "/var/lib" not in summary


def test_registry_down_turns_the_panel_critical(settings):
    app = make_app(settings.replace(registry_url="https://127.0.0.1:9", registry_timeout=1.0))
    body = app.test_client().get("/api/v1/status", auth=("olivia", "olivia-pw")).get_json()
    assert body["registry"]["ok"] is False
    assert any(f["level"] == "critical" for f in body["registry"]["findings"])


def test_metrics_parse_and_need_ops(client, settings):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", auth=("dave", "dave-pw")).status_code == 403
    client.get("/api/v1/repositories", auth=("dave", "dave-pw"))  # some registry traffic
    text = client.get("/metrics", auth=("olivia", "olivia-pw")).get_data(as_text=True)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in (
        "berth_registry_up",
        "berth_registry_request_seconds",
        "berth_nfs_mounted",
        "berth_cert_not_after_seconds",
        "berth_swarm_nodes",
        "berth_swarm_service_replicas",
        "berth_findings",
    ):
        assert name in families, name
    assert families["berth_registry_up"].samples[0].value == 1.0
    certs = {s.labels["cert"] for s in families["berth_cert_not_after_seconds"].samples}
    assert {"ca", "served"} <= certs
    public = make_app(settings.replace(metrics_public=True)).test_client()
    assert public.get("/metrics").status_code == 200
