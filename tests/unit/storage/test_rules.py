"""Retention rules: parsing (one-line errors) and decisions, each with its reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from berth.config import Settings
from berth.errors import SettingError
from berth.storage.rules import Candidate, decide, parse_policy

NOW = datetime(2024, 6, 1, tzinfo=UTC)


def candidate(digest: str, days_old: int | None, tags=("t",), in_use=False, repo="team/app") -> Candidate:
    created = NOW - timedelta(days=days_old) if days_old is not None else None
    return Candidate(repo, digest, tuple(tags), 100, created, in_use)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("rules: 3", "list under 'rules'"),
        ("rules:\n  - keep_newest: 1", "needs 'repositories'"),
        ("rules:\n  - repositories: a\n    keep_newest: -1", "keep_newest"),
        ("rules:\n  - repositories: a\n    keep_tags: '('", "not a regular expression"),
        ("rules:\n  - repositories: a\n    keep_old: 1", "unknown keys: keep_old"),
        ("rules: [", "not valid YAML"),
    ],
)
def test_bad_rules_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_policy(text)


def test_a_bad_rules_file_stops_the_start_in_one_line(tmp_path, offline_settings: Settings) -> None:
    path = tmp_path / "rules.yml"
    path.write_text("rules:\n  - repositories: a\n    keep_newest: many\n")
    environment = {"BERTH_SECRET_KEY": "x" * 20, "BERTH_LDAP_URL": "ldaps://ldap", "BERTH_LDAP_USER_BASE": "o=x",
                   "BERTH_LDAP_GROUP_BASE": "o=x", "BERTH_LDAP_ADMIN_GROUP": "cn=a", "BERTH_LDAP_OPS_GROUP": "cn=o",
                   "BERTH_RETENTION_RULES": str(path)}  # fmt: skip
    with pytest.raises(SettingError) as caught:
        Settings.from_env(environment)
    assert caught.value.name == "BERTH_RETENTION_RULES" and "\n" not in caught.value.message
    with pytest.raises(SettingError, match="HH:MM"):
        Settings.from_env({**environment, "BERTH_RETENTION_RULES": "", "BERTH_RETENTION_SCHEDULE": "25:00"})


def test_decisions_keep_newest_tags_pulled_and_running_images() -> None:
    rules = parse_policy(
        'rules:\n  - repositories: "team/*"\n    keep_newest: 1\n    keep_tags: "^v"\n    keep_pulled_days: 7\n'
    )
    images = [
        candidate("new", 1),
        candidate("release", 50, tags=("v1.0",)),
        candidate("pulled", 60),
        candidate("running", 70, in_use=True),
        candidate("undated", None),
        candidate("old", 80),
    ]
    pulls = {"pulled": NOW - timedelta(days=2), "old": NOW - timedelta(days=30)}
    decided = {d.candidate.digest: d for d in decide(rules, images, NOW, lambda repo, digest: pulls.get(digest))}
    assert [k for k, d in decided.items() if d.delete] == ["old"]
    assert decided["new"].reason == "among the 1 newest"
    assert decided["release"].reason.startswith("tag v1.0 matches")
    assert decided["pulled"].reason.startswith("pulled 2024-05-30")
    assert decided["running"].reason == "a service on the Swarm runs it"
    assert decided["undated"].reason == "its creation date is unknown"
    assert decided["old"].rule == "team/*: keep 1 newest, keep tags /^v/, keep pulled in 7 d"


def test_unknown_pulls_keep_nothing_and_unruled_repositories_are_left_alone() -> None:
    rules = parse_policy('rules:\n  - repositories: "team/*"\n    keep_pulled_days: 7\n')
    assert decide(rules, [candidate("a", 10)], NOW)[0].delete
    other = decide(rules, [candidate("b", 10, repo="else/app")], NOW)[0]
    assert not other.delete and other.reason == "no rule names this repository"
