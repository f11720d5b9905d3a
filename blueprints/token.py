"""The registry's token realm, ``/auth/token``: Docker's GET flow and the OAuth2 password grant.

GET takes HTTP Basic (none: anonymous) and answers ``token``, ``access_token``,
``expires_in``, ``issued_at``. POST takes ``grant_type=password``; any other grant is
400 ``unsupported_grant_type``, on which containerd and BuildKit fall back to GET.
Errors are JSON here whatever the client accepts: a registry client reads them.
CSRF does not apply (no cookie is read or set; credentials ride in every request).
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from berth.auth.scope import parse_scopes
from berth.auth.token_server import InvalidTokenRequest, TokenRequest
from berth.errors import BerthError, InvalidCredentials, LoginThrottled
from blueprints import services
from blueprints.access import client_address, public
from blueprints.errors import status_for
from blueprints.security import csrf

bp = Blueprint("token", __name__)
csrf.exempt(bp)

CHALLENGE = 'Basic realm="Berth registry tokens", charset="UTF-8"'
CODES = {400: "INVALID_REQUEST", 401: "UNAUTHORIZED", 429: "TOOMANYREQUESTS", 503: "UNAVAILABLE"}


@bp.route("/auth/token", methods=["GET"])
@public
def token():
    """A registry token for HTTP Basic credentials (or none) and the requested scopes."""
    username, password = _basic_credentials()
    issued = services().token_server.token(
        TokenRequest(
            service=request.args.get("service"),
            scopes=parse_scopes(request.args.getlist("scope")),
            username=username,
            password=password,
            address=client_address(),
            account=request.args.get("account"),
        )
    )
    return jsonify(
        token=issued.token, access_token=issued.token, expires_in=issued.expires_in, issued_at=issued.issued_at
    )


@bp.route("/auth/token", methods=["POST"])
@public
def oauth_token():
    """The OAuth2 password grant (containerd, BuildKit); other grants send clients to GET."""
    form = request.form
    if form.get("grant_type") != "password":
        return _oauth_error("unsupported_grant_type", "Only the password grant is supported; use GET.")
    if not form.get("username") or not form.get("password"):
        return _oauth_error("invalid_request", "username and password are required.")
    try:
        issued = services().token_server.token(
            TokenRequest(
                service=form.get("service"),
                scopes=parse_scopes(form.getlist("scope")),
                username=form["username"],
                password=form["password"],
                address=client_address(),
            )
        )
    except InvalidCredentials as exc:
        return _oauth_error("invalid_grant", exc.message)
    scope = " ".join(str(s) for s in issued.granted)
    return jsonify(
        access_token=issued.token,
        token_type="Bearer",  # noqa: S106 - the OAuth2 token type, not a secret
        expires_in=issued.expires_in,
        issued_at=issued.issued_at,
        scope=scope,
    )


def _basic_credentials() -> tuple[str | None, str | None]:
    """``(username, password)`` from HTTP Basic; ``(None, None)`` without; 401 when unreadable."""
    if "Authorization" not in request.headers:
        return None, None
    auth = request.authorization
    if auth is None or auth.type != "basic" or not auth.username:
        raise InvalidCredentials()
    return auth.username, auth.password or ""


def _oauth_error(code: str, message: str) -> Response:
    response = jsonify(error=code, error_description=message)
    response.status_code = 400
    return response


@bp.errorhandler(BerthError)
def _token_error(error: BerthError) -> Response:
    status = 400 if isinstance(error, InvalidTokenRequest) else status_for(error)
    response = jsonify(error=error.message, errors=[{"code": CODES.get(status, "ERROR"), "message": error.message}])
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = CHALLENGE
    if isinstance(error, LoginThrottled):
        response.headers["Retry-After"] = str(error.retry_after)
    return response
