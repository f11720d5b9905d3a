"""Berth's domain: plain Python that knows the registry, the directory and the stack.

Nothing in this package imports Flask; the web layer in ``blueprints/`` calls into it.
"""
