"""``flask --app app ...`` commands for people and cron jobs without a browser."""

from __future__ import annotations

import getpass
import sys
import time
from pathlib import Path

import click
from flask import Flask
from flask.cli import with_appcontext

from berth import backup as backups
from berth.errors import BerthError, DirectoryMisconfigured, DirectoryUnavailable
from berth.jobs.kinds import JobKind
from blueprints import services


def init_app(app: Flask) -> None:
    """Register Berth's commands."""
    app.cli.add_command(check_config)
    app.cli.add_command(setup)
    app.cli.add_command(rotate_certs)
    app.cli.add_command(rotate_ca)
    app.cli.add_command(backup)
    app.cli.add_command(restore)


@click.command("check-config")
@with_appcontext
def check_config() -> None:
    """Print the settings Berth runs with (secrets masked), then bind and search the directory."""
    svc = services()
    click.echo(repr(svc.settings))
    try:
        click.echo(f"directory: ok: {svc.directory.check()}")
    except DirectoryMisconfigured as exc:
        raise click.ClickException(f"directory: settings wrong: {exc.detail}") from None
    except DirectoryUnavailable:
        raise click.ClickException(f"directory: no server answers ({svc.directory.url})") from None


@click.command(JobKind.SETUP)
@click.option(
    "--yes",
    is_flag=True,
    help="Confirm what the plan asks: a critical NFS finding, turning on (or replacing) registry auth.",
)
@with_appcontext
def setup(yes: bool) -> None:
    """Set up (or converge) the registry on the Swarm, printing each step."""
    _run(JobKind.SETUP, JobKind.SETUP.options(yes))


@click.command(JobKind.ROTATE_CERTS)
@with_appcontext
def rotate_certs() -> None:
    """Issue a new server certificate and roll the registry onto it (for cron)."""
    _run(JobKind.ROTATE_CERTS, JobKind.ROTATE_CERTS.options(False))


@click.command(JobKind.ROTATE_CA)
@click.option("--yes", is_flag=True, help="Remove the old CA at the end, without waiting for the grace period.")
@with_appcontext
def rotate_ca(yes: bool) -> None:
    """Replace the CA with overlap (or resume a replacement), printing each step."""
    _run(JobKind.ROTATE_CA, JobKind.ROTATE_CA.options(yes))


@click.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@with_appcontext
def backup(file: Path) -> None:
    """Copy Berth's database to FILE, consistently, while Berth runs."""
    try:
        summary = backups.backup(services().settings.database_path, file)
    except BerthError as exc:
        raise click.ClickException(exc.message) from None
    _summary("backed up to", summary)


@click.command("restore")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Restore even though a Berth server runs on this data directory.")
@with_appcontext
def restore(file: Path, force: bool) -> None:
    """Put the backup FILE back as Berth's database (stop Berth first)."""
    database = services().settings.database_path
    if force and backups.berth_running(database.parent):
        click.echo("warning: Berth is running; restoring anyway (--force). Restart it afterwards.", err=True)
    try:
        summary = backups.restore(file, database, force=force)
    except BerthError as exc:
        raise click.ClickException(exc.message) from None
    _summary("restored into", summary)


def _summary(what: str, summary: backups.BackupSummary) -> None:
    click.echo(f"{what} {summary.path} ({summary.size_bytes} bytes)")
    for table, count in sorted(summary.rows.items()):
        click.echo(f"  {table}: {count} rows")


def _run(kind: JobKind, options: dict) -> None:
    """Record the job like the web does, run it here, print its steps; exit 1 if it failed."""
    svc = services()
    try:
        job = svc.jobs.create(svc.runner.kind(kind), f"cli:{getpass.getuser()}", "localhost", options)
    except BerthError as exc:
        raise click.ClickException(exc.message) from None
    claimed = svc.jobs.claim("cli", job.id)
    # a running Berth may have taken it first: then follow it
    final = svc.runner.run(claimed, echo=click.echo) if claimed is not None else _follow(job.id)
    for step in final.steps:
        click.echo(f"[{step.status}] {step.name}")
        for line in step.log.splitlines():
            click.echo(f"    {line}")
    click.echo(f"job {final.id} {final.status}" + (f": {final.error}" if final.error else ""))
    for key, value in final.result.items():
        click.echo(f"  {key}: {value}")
    if final.status != "succeeded":
        sys.exit(1)


def _follow(job_id: int):
    while True:
        record = services().jobs.get(job_id)
        if record.finished:
            return record
        time.sleep(1)
