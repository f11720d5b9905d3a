"""The access rules that apply to someone, in plain words (for the /access page)."""

from __future__ import annotations

from berth.auth.rules import AccessRules, Principal, Rule
from berth.auth.scope import REGISTRY


def _actions_in_words(rule: Rule) -> str:
    actions = ["pull", "push", "delete"] if "*" in rule.actions else sorted(rule.actions, key="pull push delete".find)
    return actions[0] if len(actions) == 1 else ", ".join(actions[:-1]) + " and " + actions[-1]


def _where(rule: Rule, who: Principal) -> str:
    pattern = rule.pattern_for(who)
    if pattern is None:
        return ""
    if pattern == "*":
        return "every repository"
    if pattern.endswith("/*") and "*" not in pattern[:-2]:
        return f"{pattern} (any repository under {pattern[:-1]})"
    return pattern


def explain(rules: AccessRules, who: Principal) -> list[str]:
    """One sentence per rule that applies to ``who``, in the order they are checked."""
    lines = []
    for rule in rules.for_principal(who):
        where = _where(rule, who)
        if not where and rule.type != REGISTRY:
            continue  # a {username} rule that cannot apply to this username
        if rule.type == REGISTRY:
            text = "You can list every repository (the registry catalog)." if rule.actions else ""
        elif rule.actions:
            text = f"You can {_actions_in_words(rule)} {where}."
        else:
            text = f"You cannot pull or push {where}."
        if text:
            lines.append(text)
    if not lines:
        lines.append("You cannot pull or push anything in the registry.")
    return lines


def anonymous_words(rules: AccessRules) -> str:
    """What someone who does not log in may do."""
    if rules.anonymous_pull:
        return "Anyone can pull every repository without logging in."
    return "Without logging in, nobody can pull or push."
