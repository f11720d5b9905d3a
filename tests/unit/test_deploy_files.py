"""The files operators deploy from: the Dockerfile, stack.yml, .dockerignore, and the devstack's mirror lookup."""

from __future__ import annotations

from pathlib import Path

import yaml

from devstack.image import DEFAULT_MIRROR, debian_mirror

ROOT = Path(__file__).resolve().parents[2]


def test_debian_mirror_from_deb822_sources(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\n"
    )
    assert debian_mirror(tmp_path) == "http://mirror.example/debian"


def test_debian_mirror_from_a_one_line_list_first(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "deb http://security.example/ bookworm-security main\n"
        "deb [signed-by=/usr/share/keyrings/x.gpg] http://old.example/debian bookworm main\n"
    )
    assert debian_mirror(tmp_path) == "http://old.example/debian"


def test_debian_mirror_default_when_apt_names_none(tmp_path):
    assert debian_mirror(tmp_path) == DEFAULT_MIRROR


def test_stack_locks_berth_down_and_publishes_only_the_front():
    stack = yaml.safe_load((ROOT / "stack.yml").read_text())
    berth, front = stack["services"]["berth"], stack["services"]["nginx"]
    assert berth["read_only"] is True and berth["cap_drop"] == ["ALL"]
    assert berth["user"].startswith("10001:")
    assert "ports" not in berth and berth["environment"]["BERTH_BIND"].startswith("${BERTH_BIND:-127.0.0.1:")
    assert {v["type"]: v["target"] for v in berth["volumes"]}["tmpfs"] == "/tmp"
    assert all(name.endswith("_FILE") for name in berth["environment"] if "PASSWORD" in name or "SECRET" in name)
    assert stack["networks"]["hostnet"] == {"external": True, "name": "host"}
    assert stack["configs"]["berth_nginx_conf"]["file"] == "${BERTH_NGINX_CONF:-./deploy/nginx.conf}"
    assert {s["source"] for s in front["secrets"]} == {"berth_tls_crt", "berth_tls_key"}


def test_dockerfile_builds_offline_from_a_base_argument():
    text = (ROOT / "Dockerfile").read_text()
    assert text.startswith("#") and "ARG BASE=python:3.11-slim" in text
    assert "--no-index --find-links" in text and "USER 10001" in text and "HEALTHCHECK" in text
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignored and "!build/wheels/" in ignored  # everything out, then only what the image needs
