"""The bearer secret the registry sends with every event (``Authorization: Bearer ...``).

``BERTH_EVENTS_SECRET`` (or ``_FILE``) when set; otherwise one is generated on first use
and kept in ``BERTH_DATA_DIR/events-secret`` (0600), created atomically so concurrent
gunicorn workers agree on one. The setup job writes it into the registry's
``notifications.endpoints`` entry (``berth.registry.config.notifications_section``).
"""

from __future__ import annotations

import hmac
import os
import secrets
import time
from pathlib import Path

SECRET_FILE = "events-secret"  # noqa: S105 - a file name


def events_secret(configured: str | None, data_dir: Path) -> str:
    """The configured secret, else the one kept under ``data_dir`` (made once, 0600)."""
    if configured:
        return configured
    path = Path(data_dir) / SECRET_FILE
    for _ in range(50):
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            _create(path)
            continue
        if text:
            return text
        time.sleep(0.01)  # another worker's file, being moved into place
    raise RuntimeError(f"{path} stays empty; remove it to have a new secret made")


def _create(path: Path) -> None:
    """Write a new secret to a private temporary file and link it in place unless one exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secrets.token_urlsafe(32).encode())
    finally:
        os.close(fd)
    try:
        os.link(temporary, path)  # fails if another worker was first: then its secret wins
    except FileExistsError:
        pass
    finally:
        temporary.unlink()


def bearer_matches(header: str | None, secret: str) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <secret>`` (compared in constant time)."""
    if not header or header[:7].lower() != "bearer ":
        return False
    return hmac.compare_digest(header[7:].strip().encode(), secret.encode())
