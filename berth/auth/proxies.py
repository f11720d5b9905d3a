"""Which client a request came from, when reverse proxies stand in between.

Only a peer inside ``BERTH_TRUSTED_PROXIES`` (a list of networks) is believed about
``X-Forwarded-For``: the header is walked from the right, skipping trusted proxies, and the
first address that is not one of them is the client. Anything to its left was written by
the client and is ignored. A peer outside the networks is never believed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address from a forwarding header entry (``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``::1``), else None."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_trusted(address: str, trusted: Sequence[Network]) -> bool:
    """Whether ``address`` lies in one of the ``trusted`` networks."""
    ip = parse_address(address)
    return ip is not None and any(ip in net for net in trusted)


def client_address(peer: str, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The client's address: ``peer`` unless trusted proxies vouch for another."""
    current = peer
    if not is_trusted(current, trusted):
        return current
    for entry in reversed([e for e in (forwarded_for or "").split(",") if e.strip()]):
        ip = parse_address(entry)
        if ip is None:
            return current  # a trusted proxy passed on nonsense: the last one we believe
        current = str(ip)
        if not is_trusted(current, trusted):
            return current
    return current


def forwarded_scheme(peer: str, forwarded_proto: str | None, trusted: Sequence[Network]) -> str | None:
    """The scheme the nearest trusted proxy was reached with, or None when it is not to be believed."""
    if not forwarded_proto or not is_trusted(peer, trusted):
        return None
    scheme = forwarded_proto.split(",")[-1].strip().lower()
    return scheme if scheme in ("http", "https") else None
