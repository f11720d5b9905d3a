"""``flask --app app ...`` commands for people and cron jobs without a browser."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import with_appcontext

from blueprints import services


def init_app(app: Flask) -> None:
    """Register Berth's commands."""
    app.cli.add_command(check_config)


@click.command("check-config")
@with_appcontext
def check_config() -> None:
    """Print the settings Berth runs with (secrets masked)."""
    click.echo(repr(services().settings))
