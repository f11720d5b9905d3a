"""Scope parsing: what a token request may ask for, and everything hostile dropped."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from berth.auth.scope import MAX_SCOPES, Scope, parse_scope, parse_scopes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("repository:dave/demo:pull,push", Scope("repository", "dave/demo", frozenset({"pull", "push"}))),
        ("repository:centos:pull", Scope("repository", "centos", frozenset({"pull"}))),
        ("repository:a/b/c:delete", Scope("repository", "a/b/c", frozenset({"delete"}))),
        ("repository(plugin):x:pull", Scope("repository", "x", frozenset({"pull"}), "plugin")),
        ("registry:catalog:*", Scope("registry", "catalog", frozenset({"*"}))),
        ("repository:dave/demo:pull,frobnicate", Scope("repository", "dave/demo", frozenset({"pull"}))),
    ],
)
def test_valid_scopes(text, expected):
    assert parse_scope(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "repository",
        "repository:dave/demo",
        "repository::pull",
        "repository:../etc/passwd:pull",
        "repository:dave/../alice:pull",
        "repository:/abs:pull",
        "repository:Upper:pull",
        "repository:dave/demo:",
        "repository:dave/demo:frobnicate",
        "registry:catalog:pull",
        "registry:other:*",
        "registry(x):catalog:*",
        "repository(../x):a:pull",
        "image:a:pull",
        "repository:127.0.0.1:5000/a:pull",
        "repository:a\n:pull",
        "repository:" + "a" * 300 + ":pull",
        "repository:a:" + "pull," * 200,
    ],
)
def test_malformed_scopes_are_dropped(text):
    assert parse_scope(text) is None


def test_repeated_scopes_merge_into_one():
    scopes = parse_scopes(["repository:a:pull"] * 300 + ["repository:a:push"])
    assert scopes == (Scope("repository", "a", frozenset({"pull", "push"})),)
    assert parse_scopes(["repository:a:pull"] * 1000) == (Scope("repository", "a", frozenset({"pull"})),)


def test_space_separated_values_and_cap():
    many = " ".join(f"repository:r{i}:pull" for i in range(100))
    scopes = parse_scopes([many])
    assert len(scopes) == MAX_SCOPES


def test_huge_query_is_cut_off():
    assert parse_scopes(["x" * 100_000, "repository:a:pull"]) == ()


@given(st.text(max_size=300))
def test_parsing_never_raises(text):
    scope = parse_scope(text)
    assert scope is None or scope.actions
