"""One HTTP exchange with a registry, read and judged: bounded bodies, JSON, status and TLS failures as typed errors."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from urllib.parse import urlsplit

import requests

from berth.errors import BadUpstreamResponse, NotFound, PageSizeRefused, Unauthorized, UpstreamUnavailable


def served_certificate_names(base_url: str) -> tuple[str, str] | None:
    """Subject and issuer of the certificate a server presents, for error messages only.

    The handshake here is not verified on purpose: nothing from it is trusted, it only
    tells an operator *which* certificate is being served when verification fails.
    """
    from cryptography import x509

    parts = urlsplit(base_url)
    if not parts.hostname:
        return None
    try:
        pem = ssl.get_server_certificate((parts.hostname, parts.port or 443), timeout=3)
        cert = x509.load_pem_x509_certificate(pem.encode())
        return cert.subject.rfc4514_string(), cert.issuer.rfc4514_string()
    except (OSError, ValueError):
        return None


def origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port of ``url`` (the default port filled in), to compare origins."""
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or (443 if parts.scheme == "https" else 80)


def media_type(response: requests.Response) -> str:
    """The response's Content-Type without parameters."""
    return (response.headers.get("Content-Type") or "").split(";", 1)[0].strip()


def read_bounded(response: requests.Response, limit: int, name: str) -> None:
    """Read the body into ``response._content``, refusing more than ``limit`` bytes."""
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > limit and response.request.method != "HEAD":
        response.close()
        raise BadUpstreamResponse(
            f"Registry {name} sent {int(declared):,} bytes; Berth reads at most {limit:,}.", upstream=name
        )
    chunks, total = [], 0
    for chunk in response.iter_content(64 * 1024):
        total += len(chunk)
        if total > limit:
            response.close()
            raise BadUpstreamResponse(
                f"Registry {name} sent more than {limit:,} bytes; not read further.", upstream=name
            )
        chunks.append(chunk)
    response._content = b"".join(chunks)
    response._content_consumed = True  # type: ignore[attr-defined]  # requests' private flag, not in its stubs


def json_object(response: requests.Response, name: str) -> dict:
    """The body as a JSON object; BadUpstreamResponse for anything else."""
    try:
        body = json.loads(response.content)  # strict: invalid UTF-8 is refused, not replaced with U+FFFD
    except ValueError:
        raise BadUpstreamResponse(f"Registry {name} answered with something that is not JSON.", upstream=name) from None
    if not isinstance(body, dict):
        raise BadUpstreamResponse(f"Registry {name} answered JSON that is not an object.", upstream=name)
    return body


def registry_error(response: requests.Response) -> tuple[str | None, str]:
    """The first ``errors[].code`` and ``message`` of a registry error body, if any."""
    try:
        errors = response.json().get("errors") or []
        first = errors[0]
        return str(first.get("code"))[:64], str(first.get("message") or "")[:200]
    except (ValueError, AttributeError, IndexError, TypeError):
        return None, ""


def check_status(response: requests.Response, what: str, name: str) -> requests.Response:
    """``response`` if its status is 2xx; else the typed error its status (and error body) means."""
    status = response.status_code
    if 200 <= status < 300:
        return response
    code, detail = registry_error(response)
    if status == 404:
        raise NotFound(f"{what} was not found in registry {name}" + (f" ({code})." if code else "."))
    if status == 400 and code == "PAGINATION_NUMBER_INVALID":
        raise PageSizeRefused()
    if status == 403:
        raise Unauthorized(f"Registry {name} denied access to {what}.")
    if status == 429:
        raise UpstreamUnavailable(f"Registry {name} is rate-limiting Berth; try again shortly.", upstream=name)
    raise BadUpstreamResponse(
        f"Registry {name} answered {status} for {what}" + (f": {code} {detail}".rstrip() if code else "."),
        upstream=name,
    )


def tls_message(exc: Exception, base_url: str, name: str, ca_bundle: Path | None) -> str:
    """Why TLS failed, with the served certificate's subject and issuer when readable."""
    served = served_certificate_names(base_url)
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        reason = "its certificate does not chain to the configured CA"
        if "Hostname mismatch" in text or "doesn't match" in text:
            reason = "its certificate does not name this host"
    else:
        reason = "the TLS handshake failed"
    ca = ca_bundle or "the system trust store"
    message = f"Registry {name}: {reason} ({ca})."
    if served:
        message += f" Served certificate: subject {served[0]}, issuer {served[1]}."
    return message
