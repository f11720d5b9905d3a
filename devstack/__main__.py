"""Command line: ``python -m devstack up [--swarm]|down|env [--state-dir DIR]``.

``up`` prints ``export NAME=value`` lines on stdout (so ``eval "$(python -m devstack up)"``
works) and a one-line summary on stderr; failures print one line naming the component
and its log file, and exit 1. ``up --swarm`` also starts a private Docker engine in Swarm
mode running the registry as the service ``registry``; where that cannot run (no Debian
``docker.io``, dockerd fails), it says why and exits 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from devstack.stack import DEFAULT_STATE_DIR, StackError, down, env, format_env, swarm_timings, up


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the devstack command."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--state-dir",
        default=DEFAULT_STATE_DIR,
        metavar="DIR",
        help=f"where the stack keeps its files (default: {DEFAULT_STATE_DIR}/)",
    )
    parser = argparse.ArgumentParser(
        prog="python -m devstack",
        description="Start, stop or describe Berth's local stack (slapd, TLS registry, seeded images).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", parents=[common], help="start the stack and print its environment")
    start.add_argument(
        "--swarm",
        action="store_true",
        help="run the registry as a Swarm service of a private Docker engine (Debian docker.io)",
    )
    start.add_argument(
        "--directory",
        choices=("openldap", "ad"),
        default="openldap",
        help="the directory server: OpenLDAP (default) or a Samba Active Directory domain controller",
    )
    start.add_argument(
        "--nodes",
        type=int,
        default=0,
        metavar="N",
        help="N (2-4) engines in network namespaces of their own as one Swarm, a TCP balancer in front",
    )
    start.add_argument(
        "--with-berth-image",
        action="store_true",
        help="also build Berth's image on that engine from a base made here (implies --swarm)",
    )
    commands.add_parser("down", parents=[common], help="stop what `up` started")
    commands.add_parser("env", parents=[common], help="print the environment of the running stack")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; return the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "up":
            began = time.monotonic()
            state_file = Path(args.state_dir).expanduser() / "state.json"
            before = state_file.stat().st_mtime_ns if state_file.exists() else None
            environment = up(
                args.state_dir,
                swarm=args.swarm or args.with_berth_image,
                directory=args.directory,
                nodes=args.nodes,
                berth_image=args.with_berth_image,
            )
            sys.stdout.write(format_env(environment))
            detail = ""
            if before is not None and state_file.stat().st_mtime_ns == before:  # nothing was started
                detail = " (already running)"
            elif environment.get("DEVSTACK_SWARM") == "1":
                steps = swarm_timings(args.state_dir)
                names = (("engine", "engine"), ("engines", "engines"), ("swarm_init", "swarm init"),
                         ("swarm", "swarm"), ("image", "image"))  # fmt: skip
                parts = [f"{label} {steps[key]:.1f}s" for key, label in names if key in steps]
                if "service_converge" in steps:
                    parts.append(f"service converged {steps['service_converge']:.1f}s")
                if "berth_build" in steps:
                    base = steps["base_tar"] + steps["base_import"]
                    parts.append(f"base {base:.1f}s, Berth image {steps['wheels'] + steps['berth_build']:.1f}s")
                detail = f" (Swarm: {', '.join(parts)})" if parts else " (Swarm)"
            print(
                f"devstack: up in {time.monotonic() - began:.1f}s{detail}; "
                f"env in {environment['DEVSTACK_STATE_DIR']}/env",
                file=sys.stderr,
            )
        elif args.command == "down":
            down(args.state_dir)
        else:
            sys.stdout.write(format_env(env(args.state_dir)))
    except StackError as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
