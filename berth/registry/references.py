"""Repository names, tags and digests: what the registry's API accepts in a URL path.

The grammar is Distribution's (``reference/regexp.go``); anything else is :class:`NotFound`,
since there is nothing by that name to look up.
"""

from __future__ import annotations

import re

from berth.errors import NotFound

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"

# \Z, not $: "$" also matches before a trailing newline, which would let "latest\n" through
NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*\Z")

TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")

DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}\Z|^sha512:[a-f0-9]{128}\Z")


def check_name(name: str) -> str:
    """``name`` if it is a valid repository name, else NotFound (nothing to look up)."""
    if len(name) > 255 or not NAME_RE.match(name):
        raise NotFound(f"{name[:80]!r} is not a valid repository name.")
    return name


def check_reference(reference: str) -> str:
    """``reference`` if it is a valid tag or digest, else NotFound."""
    if not (TAG_RE.match(reference) or DIGEST_RE.match(reference)):
        raise NotFound(f"{reference[:80]!r} is not a valid tag or digest.")
    return reference


def is_digest(reference: str) -> bool:
    """Whether ``reference`` names content (a digest) rather than a tag."""
    return ":" in reference
