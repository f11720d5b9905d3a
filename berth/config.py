"""Settings from ``BERTH_*`` environment variables, validated once at start.

Every secret can also come from ``NAME_FILE`` (Docker-secret style). A wrong or
missing setting raises :class:`SettingError` naming it; ``app.py`` turns that into
one line on stderr instead of a traceback.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from berth.errors import SettingError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_CA_IN_DATA_DIR = Path("ca")  # default of Settings.ca_dir, by identity: data_dir / "ca"


@dataclass(frozen=True)
class Settings:
    """Everything Berth needs to know about its surroundings."""

    secret_key: str
    ldap_url: str
    ldap_user_base: str
    ldap_group_base: str
    ldap_admin_group: str
    ldap_ops_group: str
    data_dir: Path = Path("instance")
    registry_url: str = "https://127.0.0.1:5000"
    registry_ca: Path | None = None
    registry_username: str | None = None
    registry_password: str | None = None
    ldap_start_tls: bool = False
    ldap_ca: Path | None = None
    ldap_bind_dn: str | None = None
    ldap_bind_password: str | None = None
    ldap_user_filter: str = "(uid={username})"
    ldap_username_attribute: str = "uid"
    ldap_nested_groups: bool = False
    ldap_domain: str | None = None
    ldap_timeout: float = 5.0
    nfs_path: Path = Path("/var/lib/registry")
    docker_host: str | None = None
    swarm_service: str = "registry"
    registry_image: str = "registry:2"
    swarm_host_network: bool = False
    swarm_converge_timeout: float = 120.0
    swarm_placement: tuple[str, ...] = ()
    registry_replicas: int | None = None  # None: keep the service's count (1 for a new one)
    node_check_image: str = "berth:latest"
    node_check_interval: float = 300.0
    registry_hostnames: tuple[str, ...] = ()
    cert_days: int = 90
    ca_grace_hours: float = 24.0
    ca_dir: Path = _CA_IN_DATA_DIR
    debug: bool = False
    secure_cookies: bool = False
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    cache_ttl: float = 30.0
    fetch_workers: int = 16
    registry_timeout: float = 10.0
    session_lifetime: int = 12 * 3600
    session_recheck: int = 300
    login_max_failures: int = 3
    login_address_max_failures: int = 20
    login_window: int = 900
    login_delay: float = 2.0
    login_max_delay: float = 300.0
    ldap_allow_plaintext: bool = False
    ldap_developer_group: str | None = None
    registry_token_realms: tuple[str, ...] = ()
    health_interval: float = 10.0
    background: bool = True
    job_stale_seconds: float = 15.0
    nfs_deadline: float = 3.0
    nfs_write_probe: bool = True
    registry_config: Path | None = None
    metrics_public: bool = False
    public_url: str | None = None
    access_rules: Path | None = None
    anonymous_pull: bool = False
    registry_service: str | None = None
    events_secret: str | None = None
    events_retention_days: int = 30
    retention_rules: Path | None = None
    retention_schedule: str | None = None
    registry_binary: str | None = None
    gc_timeout: float = 600.0

    def __post_init__(self) -> None:
        if self.ca_dir is _CA_IN_DATA_DIR:
            object.__setattr__(self, "ca_dir", self.data_dir / "ca")
        if not self.registry_hostnames:
            host = urlsplit(self.registry_url).hostname or "localhost"
            object.__setattr__(self, "registry_hostnames", (host,))
        if not self.registry_service:
            object.__setattr__(self, "registry_service", self.registry_host)
        if self.events_secret is not None and not re.fullmatch(r"[A-Za-z0-9._~+/=-]{16,512}", self.events_secret):
            raise SettingError("BERTH_EVENTS_SECRET", "must be 16 to 512 characters of A-Z a-z 0-9 . _ ~ + / = -")

    @property
    def registry_host(self) -> str:
        """``HOST:PORT`` of the registry, as Docker clients name it."""
        parts = urlsplit(self.registry_url)
        return parts.netloc

    @property
    def database_path(self) -> Path:
        """The SQLite file holding audit log, sessions, jobs and caches."""
        return self.data_dir / "berth.sqlite3"

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (handy in tests)."""
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        shown = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in {"secret_key", "ldap_bind_password", "registry_password", "events_secret"} and value:
                value = "***"
            shown.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every setting; raise SettingError naming the first bad one."""
        env = _Env(os.environ if environ is None else environ)
        debug = env.flag("BERTH_DEBUG", False)
        secret_key = env.secret("BERTH_SECRET_KEY")
        if not secret_key:
            if not debug:
                raise SettingError("BERTH_SECRET_KEY", "is required (set BERTH_DEBUG=1 for a throw-away key)")
            secret_key = secrets.token_hex(32)
        elif len(secret_key) < 16:
            raise SettingError("BERTH_SECRET_KEY", "must be at least 16 characters")
        data_dir = Path(env.get("BERTH_DATA_DIR") or "instance").absolute()
        registry_url = env.url("BERTH_REGISTRY_URL", "https://127.0.0.1:5000", ("https", "http"))
        ca_dir = Path(env.get("BERTH_CA_DIR") or data_dir / "ca").absolute()
        ldap_urls = env.urls("BERTH_LDAP_URL", ("ldap", "ldaps"))
        if not ldap_urls:
            raise SettingError("BERTH_LDAP_URL", "is required")
        ldap_url = ",".join(ldap_urls)
        ldap_start_tls = env.flag("BERTH_LDAP_START_TLS", False)
        ldap_allow_plaintext = env.flag("BERTH_LDAP_ALLOW_PLAINTEXT", False)
        plaintext = any(url.startswith("ldap://") for url in ldap_urls)
        if plaintext and not ldap_start_tls and not ldap_allow_plaintext:
            raise SettingError(
                "BERTH_LDAP_URL",
                "is ldap:// without StartTLS, so passwords would cross the network in clear: set"
                " BERTH_LDAP_START_TLS=true, use ldaps://, or accept it with BERTH_LDAP_ALLOW_PLAINTEXT=true",
            )
        username_attribute = env.get("BERTH_LDAP_USERNAME_ATTRIBUTE") or "uid"
        if not username_attribute.replace("-", "").replace(";", "").isalnum():
            raise SettingError("BERTH_LDAP_USERNAME_ATTRIBUTE", f"must be an attribute, not {username_attribute!r}")
        user_filter = env.get("BERTH_LDAP_USER_FILTER") or f"({username_attribute}={{username}})"
        domain = env.get("BERTH_LDAP_DOMAIN") or None
        if domain and not domain.replace("-", "").replace(".", "").isalnum():
            raise SettingError("BERTH_LDAP_DOMAIN", f"must be a NetBIOS domain name like LAB, not {domain!r}")
        if "{username}" not in user_filter or not user_filter.startswith("("):
            raise SettingError("BERTH_LDAP_USER_FILTER", "must be an LDAP filter containing {username}")
        hostnames = tuple(h.strip() for h in (env.get("BERTH_REGISTRY_HOSTNAME") or "").split(",") if h.strip())
        return cls(
            secret_key=secret_key,
            debug=debug,
            data_dir=data_dir,
            registry_url=registry_url.rstrip("/"),
            registry_ca=env.path("BERTH_REGISTRY_CA") or _default_registry_ca(ca_dir, registry_url),
            registry_username=env.get("BERTH_REGISTRY_USERNAME") or None,
            registry_token_realms=env.urls("BERTH_REGISTRY_TOKEN_REALMS", ("https", "http")),
            registry_password=env.secret("BERTH_REGISTRY_PASSWORD"),
            ldap_url=ldap_url,
            ldap_start_tls=ldap_start_tls,
            ldap_allow_plaintext=ldap_allow_plaintext,
            ldap_developer_group=env.get("BERTH_LDAP_DEVELOPER_GROUP") or None,
            ldap_ca=env.path("BERTH_LDAP_CA"),
            ldap_bind_dn=env.get("BERTH_LDAP_BIND_DN") or None,
            ldap_bind_password=env.secret("BERTH_LDAP_BIND_PASSWORD"),
            ldap_user_base=env.required("BERTH_LDAP_USER_BASE"),
            ldap_user_filter=user_filter,
            ldap_username_attribute=username_attribute,
            ldap_nested_groups=env.flag("BERTH_LDAP_NESTED_GROUPS", False),
            ldap_domain=domain,
            ldap_group_base=env.required("BERTH_LDAP_GROUP_BASE"),
            ldap_admin_group=env.required("BERTH_LDAP_ADMIN_GROUP"),
            ldap_ops_group=env.required("BERTH_LDAP_OPS_GROUP"),
            ldap_timeout=env.number("BERTH_LDAP_TIMEOUT", 5.0, float),
            nfs_path=Path(env.get("BERTH_NFS_PATH") or "/var/lib/registry"),
            docker_host=env.get("DOCKER_HOST") or None,
            swarm_service=env.get("BERTH_SWARM_SERVICE") or "registry",
            registry_image=env.get("BERTH_REGISTRY_IMAGE") or "registry:2",
            swarm_host_network=env.flag("BERTH_SWARM_HOST_NETWORK", False),
            swarm_converge_timeout=env.number("BERTH_SWARM_CONVERGE_TIMEOUT", 120.0, float),
            registry_replicas=env.number("BERTH_REGISTRY_REPLICAS", None, int),
            node_check_image=env.get("BERTH_NODE_CHECK_IMAGE") or "berth:latest",
            node_check_interval=env.number("BERTH_NODE_CHECK_INTERVAL", 300.0, float),
            swarm_placement=tuple(c.strip() for c in (env.get("BERTH_SWARM_PLACEMENT") or "").split(",") if c.strip()),
            registry_hostnames=hostnames,
            cert_days=env.number("BERTH_CERT_DAYS", 90, int),
            ca_grace_hours=env.number("BERTH_CA_GRACE_HOURS", 24.0, float),
            ca_dir=ca_dir,
            secure_cookies=env.flag("BERTH_SECURE_COOKIES", False),
            trusted_proxies=env.networks("BERTH_TRUSTED_PROXIES"),
            cache_ttl=env.number("BERTH_CACHE_TTL", 30.0, float),
            fetch_workers=env.number("BERTH_FETCH_WORKERS", 16, int),
            registry_timeout=env.number("BERTH_REGISTRY_TIMEOUT", 10.0, float),
            session_lifetime=env.number("BERTH_SESSION_LIFETIME", 12 * 3600, int),
            session_recheck=env.number("BERTH_SESSION_RECHECK", 300, int),
            login_max_failures=env.number("BERTH_LOGIN_MAX_FAILURES", 3, int),
            login_delay=env.number("BERTH_LOGIN_DELAY", 2.0, float),
            login_max_delay=env.number("BERTH_LOGIN_MAX_DELAY", 300.0, float),
            login_address_max_failures=env.number("BERTH_LOGIN_ADDRESS_MAX_FAILURES", 20, int),
            login_window=env.number("BERTH_LOGIN_WINDOW", 900, int),
            health_interval=env.number("BERTH_HEALTH_INTERVAL", 10.0, float),
            nfs_deadline=env.number("BERTH_NFS_DEADLINE", 3.0, float),
            nfs_write_probe=env.flag("BERTH_NFS_WRITE_PROBE", True),
            registry_config=env.path("BERTH_REGISTRY_CONFIG"),
            metrics_public=env.flag("BERTH_METRICS_PUBLIC", False),
            public_url=env.url("BERTH_PUBLIC_URL", None, ("https", "http")).rstrip("/")
            if env.get("BERTH_PUBLIC_URL")
            else None,
            access_rules=env.path("BERTH_ACCESS_RULES"),
            anonymous_pull=env.flag("BERTH_ANONYMOUS_PULL", False),
            registry_service=env.get("BERTH_REGISTRY_SERVICE") or None,
            background=env.flag("BERTH_BACKGROUND", True),
            job_stale_seconds=env.number("BERTH_JOB_STALE_SECONDS", 15.0, float),
            events_secret=env.secret("BERTH_EVENTS_SECRET"),
            events_retention_days=env.number("BERTH_EVENTS_RETENTION_DAYS", 30, int),
            **_lifecycle(env),
        )


def _lifecycle(env: _Env) -> dict[str, Any]:
    """The settings of the registry lifecycle: retention rules and schedule, garbage collection."""
    rules = env.path("BERTH_RETENTION_RULES")
    if rules is not None:
        from berth.storage.rules import load_policy

        load_policy(rules)  # a bad file stops the start here, in one line naming the setting
    schedule = env.get("BERTH_RETENTION_SCHEDULE") or None
    if schedule is not None and not _HHMM.fullmatch(schedule):
        raise SettingError("BERTH_RETENTION_SCHEDULE", f"must be a time of day HH:MM (or empty), not {schedule!r}")
    binary = env.get("BERTH_REGISTRY_BINARY") or None
    if binary is not None and not binary.startswith("/"):
        raise SettingError("BERTH_REGISTRY_BINARY", f"must be an absolute path inside the image, not {binary!r}")
    return {
        "retention_rules": rules,
        "retention_schedule": schedule,
        "registry_binary": binary,
        "gc_timeout": env.number("BERTH_GC_TIMEOUT", 600.0, float),
    }


_HHMM = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")


def _default_registry_ca(ca_dir: Path, registry_url: str) -> Path | None:
    """Berth's own CA if it has one, else what Docker on this host trusts, else None."""
    candidates = [ca_dir / "ca.crt", Path("/etc/docker/certs.d") / urlsplit(registry_url).netloc / "ca.crt"]
    return next((p for p in candidates if p.is_file()), None)


class _Env:
    """Typed, validating reads from an environment mapping."""

    def __init__(self, environ: Mapping[str, str]):
        self._environ = environ

    def get(self, name: str) -> str | None:
        value = self._environ.get(name)
        return value.strip() if value is not None else None

    def required(self, name: str) -> str:
        value = self.get(name)
        if not value:
            raise SettingError(name, "is required")
        return value

    def secret(self, name: str) -> str | None:
        """``NAME`` or the contents of the file ``NAME_FILE`` (newline stripped), never both."""
        direct = self._environ.get(name)
        file_name = self._environ.get(f"{name}_FILE")
        if direct and file_name:
            raise SettingError(name, f"set either {name} or {name}_FILE, not both")
        if file_name:
            try:
                return Path(file_name).read_text().rstrip("\r\n") or None
            except OSError as exc:
                raise SettingError(f"{name}_FILE", f"cannot read {file_name}: {exc.strerror}") from None
        return direct or None

    def flag(self, name: str, default: bool) -> bool:
        value = self.get(name)
        if value is None:
            return default
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise SettingError(name, f"must be true or false, not {value!r}")

    def number(self, name: str, default, kind):
        value = self.get(name)
        if not value:
            return default
        try:
            number = kind(value)
        except ValueError:
            raise SettingError(name, f"must be a {kind.__name__}, not {value!r}") from None
        if number <= 0:
            raise SettingError(name, "must be positive")
        return number

    def networks(self, name: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """Comma-separated CIDRs (a bare address is its own /32 or /128)."""
        value = self.get(name)
        if not value:
            return ()
        found = []
        for item in value.split(","):
            try:
                found.append(ipaddress.ip_network(item.strip(), strict=True))
            except ValueError:
                raise SettingError(name, f"must be comma-separated networks like 10.0.0.0/8, not {item!r}") from None
        return tuple(found)

    def urls(self, name: str, schemes: tuple[str, ...]) -> tuple[str, ...]:
        """Comma-separated URLs, each checked like :meth:`url`."""
        items = [item.strip() for item in (self.get(name) or "").split(",") if item.strip()]
        return tuple(self.url(name, None, schemes, value=item).rstrip("/") for item in items)

    def path(self, name: str) -> Path | None:
        value = self.get(name)
        if not value:
            return None
        path = Path(value)
        if not path.is_file():
            raise SettingError(name, f"{value} is not a readable file")
        return path

    def url(self, name: str, default: str | None, schemes: tuple[str, ...], value: str | None = None) -> str:
        value = value or self.get(name) or default
        if not value:
            raise SettingError(name, "is required")
        parts = urlsplit(value)
        if "@" in parts.netloc:
            # the value is not repeated: it holds a password
            raise SettingError(name, "must not hold credentials (user:password@); use the matching secret setting")
        if parts.scheme not in schemes or not parts.hostname:
            raise SettingError(name, f"must be a {' or '.join(s + '://' for s in schemes)} URL, not {value!r}")
        try:
            _ = parts.port  # urlsplit validates the port only when asked
        except ValueError:
            raise SettingError(name, f"has an invalid port: {value!r}") from None
        return value
