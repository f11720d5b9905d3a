"""How to trust the registry's CA, and the CA certificate itself (public).

During a CA rotation (``rotate-ca``) the page shows both CAs and ``/ca.crt`` is the bundle
every node holds: the new CA first, then the old one.
"""

from __future__ import annotations

from flask import Blueprint, Response, render_template, url_for

from berth.errors import NotFound
from berth.roles import Role
from berth.tls.authority import Authority
from berth.tls.certs import describe, read_certificate
from blueprints import services
from blueprints.access import public, requires

bp = Blueprint("trust", __name__)


def current_ca_path():
    """The CA clients should trust: Berth's own, else the one it verifies the registry with."""
    settings = services().settings
    own = settings.ca_dir / "ca.crt"
    if own.is_file():
        return own
    if settings.registry_ca and settings.registry_ca.is_file():
        return settings.registry_ca
    raise NotFound("Berth holds no CA certificate yet; an admin can create one with the setup job.")


@bp.route("/trust")
@requires(Role.DEVELOPER)
def trust():
    """Per-OS steps to trust the registry's CA."""
    settings = services().settings
    ca = read_certificate(current_ca_path())
    authority = Authority(settings.ca_dir)
    rotation = authority.state() if (settings.ca_dir / "ca.crt").is_file() else None
    trusted = [(t.role, describe(t.certificate)) for t in authority.trusted()] if rotation else []
    if trusted:
        ca = trusted[0][1]  # the new CA: the first in the bundle, the one the commands check
    path = url_for("trust.ca_certificate")
    # BERTH_PUBLIC_URL, when set, keeps a forged Host header (or a TLS proxy) out of the commands
    ca_url = f"{settings.public_url}{path}" if settings.public_url else url_for("trust.ca_certificate", _external=True)
    return render_template(
        "trust.html",
        ca=ca,
        rotation=rotation,
        trusted=trusted,
        host=settings.registry_host,
        registry_url=settings.registry_url,
        ca_url=ca_url,
    )


@bp.route("/ca.crt")
@public
def ca_certificate():
    """The CA certificate in PEM, for `curl -o ca.crt` (during a CA rotation, the new and the old CA)."""
    settings = services().settings
    path = current_ca_path()
    body = Authority(settings.ca_dir).bundle_pem() if path == settings.ca_dir / "ca.crt" else read_certificate(path).pem
    return Response(
        body,
        mimetype="application/x-pem-file",
        headers={"Content-Disposition": 'attachment; filename="ca.crt"', "Cache-Control": "public, max-age=300"},
    )
