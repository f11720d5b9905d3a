"""Berth's local stack: OpenLDAP, a TLS Distribution registry and seeded images.

Use from the shell with ``python -m devstack up|down|env [--state-dir DIR]`` or from
Python (tests) with :func:`up`, :func:`down` and :func:`env`. Everything lives under a
state directory (default ``.devstack/``) and binds only to free loopback ports.

This package never imports from ``berth``: it stands for the outside world Berth talks to.
"""

from devstack.stack import StackError, down, env, up

__all__ = ["StackError", "down", "env", "up"]
