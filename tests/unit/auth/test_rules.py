"""Access rules: the defaults, the file format and first-match-wins."""

from __future__ import annotations

import pytest

from berth.auth.rules import AccessRules, Principal, load_rules
from berth.auth.scope import parse_scope
from berth.errors import SettingError
from berth.roles import Role

ADMINS = "cn=registry-admins,ou=groups,dc=pure,dc=lab,dc=com"
ALICE = Principal("alice", Role.ADMIN, frozenset({ADMINS}))
OLIVIA = Principal("olivia", Role.OPS)
DAVE = Principal("dave", Role.DEVELOPER)
NOBODY = Principal(None)


def granted(rules: AccessRules, who: Principal, scope: str) -> set[str]:
    parsed = parse_scope(scope)
    assert parsed is not None
    return set(rules.decide(who, parsed).actions)


@pytest.mark.parametrize(
    ("who", "scope", "expected"),
    [
        (ALICE, "repository:library/demo:pull,push,delete", {"pull", "push", "delete"}),
        (ALICE, "registry:catalog:*", {"*"}),
        (OLIVIA, "repository:library/demo:pull,push", {"pull"}),
        (OLIVIA, "registry:catalog:*", {"*"}),
        (DAVE, "repository:dave/demo:pull,push", {"pull", "push"}),
        (DAVE, "repository:dave/a/b:push", {"push"}),
        (DAVE, "repository:dave/demo:delete", set()),
        (DAVE, "repository:library/demo:pull,push", {"pull"}),
        (DAVE, "repository:davey/demo:push", set()),
        (DAVE, "registry:catalog:*", set()),
        (NOBODY, "repository:centos:pull", set()),
    ],
)
def test_default_rules(who, scope, expected):
    assert granted(load_rules(None), who, scope) == expected


def test_anonymous_pull_only_when_enabled():
    rules = load_rules(None, anonymous_pull=True)
    assert granted(rules, NOBODY, "repository:centos:pull,push") == {"pull"}
    assert granted(rules, NOBODY, "registry:catalog:*") == set()


def test_username_that_is_not_a_path_component_gets_no_namespace():
    odd = Principal("Dave*", Role.DEVELOPER)
    assert granted(load_rules(None), odd, "repository:dave/x:pull,push") == {"pull"}


def test_file_rules_first_match_wins(tmp_path):
    path = tmp_path / "rules.yml"
    path.write_text(
        """
rules:
  - comment: nobody pushes to frozen
    match: {name: "frozen/*"}
    actions: []
  - match: {group: registry-admins}
    actions: ["*"]
  - match: {groups: ["cn=ci,ou=groups,dc=pure,dc=lab,dc=com"], name: "ci/*"}
    actions: [pull, push]
  - match: {account: dave, name: "team/{username}-*"}
    actions: [push, pull]
  - match: {role: ops, type: registry, name: catalog}
    actions: ["*"]
  - actions: [pull]
"""
    )
    rules = load_rules(path)
    assert granted(rules, ALICE, "repository:frozen/x:pull") == set()
    assert granted(rules, ALICE, "repository:x:delete") == {"delete"}
    ci = Principal("robot", Role.DEVELOPER, frozenset({"cn=ci,ou=groups,dc=pure,dc=lab,dc=com"}))
    assert granted(rules, ci, "repository:ci/app:push") == {"push"}
    assert granted(rules, DAVE, "repository:team/dave-api:push") == {"push"}
    assert granted(rules, DAVE, "repository:team/olivia-api:push") == set()
    assert granted(rules, ALICE, "registry:catalog:*") == {"*"}
    assert granted(rules, DAVE, "registry:catalog:*") == set()
    assert [r.number for r in rules.for_principal(DAVE)] == [1, 4, 6]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("- {match: {role: wizard}, actions: [pull], comment: magic}", "rule 1 (magic): role"),
        ("- {actions: [pull]}\n- {match: {nmae: x}, actions: [pull]}", "rule 2: match may only hold"),
        ("- {match: {type: registry, name: other}, actions: ['*']}", "rule 1: the only registry"),
        ("- {actions: [fly]}", "rule 1: actions must be"),
        ("- {match: {groups: [1]}, actions: [pull]}", "rule 1: groups must be"),
        ("- [not, a, mapping]", "rule 1: must be a mapping"),
        ("rules: {}", "non-empty list"),
        ("- {actions: [pull]\n", "not valid YAML at line"),
    ],
)
def test_bad_file_names_the_rule_in_one_line(tmp_path, text, named):
    path = tmp_path / "rules.yml"
    path.write_text(text)
    with pytest.raises(SettingError) as caught:
        load_rules(path)
    message = str(caught.value)
    assert message.startswith("BERTH_ACCESS_RULES: ") and named in message and "\n" not in message


def test_star_is_granted_only_with_all_three_actions(tmp_path):
    path = tmp_path / "rules.yml"
    path.write_text("- {match: {account: alice}, actions: [pull, push, delete]}\n- {actions: [pull, push]}\n")
    rules = load_rules(path)
    assert granted(rules, ALICE, "repository:x:*") == {"*"}
    assert granted(rules, DAVE, "repository:x:*") == set()
