"""A throw-away Active Directory domain controller (Samba 4, Debian package ``samba``).

Layout under ``DIR/ad``: ``dc/`` (the provisioned domain: ``private/`` with the databases,
``etc/smb.conf`` rewritten at every start, ``run/`` for Samba's pid files) and ``seed.log``.

Provisioning (``samba-tool domain provision``) takes about 7 s here, so the provisioned,
never-started domain is kept once per machine under ``~/.cache/berth-devstack/`` (keyed by
the Samba version) and copied; only ``smb.conf`` holds paths, and it is written fresh.

Samba's LDAP server has no port setting: it always listens on 389/636 (and 3268/3269) of
the interfaces it is given, and it refuses any address that is not an interface's (so no
127.0.0.2 either). Only one AD devstack can therefore run on a machine. :func:`claim_ports`
takes the machine-wide lock ``/tmp/berth-ad.lock``, which the ``samba`` process inherits and
holds for as long as it lives.

Demo accounts (domain ``LAB``, realm ``LAB.TEST``): alice (registry-admins, registry-ops),
olivia (registry-ops), dave (developer), erin (ops only through platform-team, a group
inside registry-ops), and the cases AD reports in its bind errors: ``disabled`` (data 533),
``mustchange`` (773), ``expired`` (701) and ``locked`` (775); each password is NAME-pw.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import ssl
import subprocess
import time
from pathlib import Path

from devstack import procs
from devstack.files import write_private
from devstack.ports import LOOPBACK, is_listening

REALM = "LAB.TEST"
DOMAIN = "LAB"
BASE = "DC=lab,DC=test"
USERS = f"CN=Users,{BASE}"
GROUPS = f"OU=Groups,{BASE}"
ADMIN_GROUP = f"CN=registry-admins,{GROUPS}"
OPS_GROUP = f"CN=registry-ops,{GROUPS}"
NESTED_GROUP = f"CN=platform-team,{GROUPS}"
SERVICE_ACCOUNT = "berth-svc"
SERVICE_DN = f"CN={SERVICE_ACCOUNT},{USERS}"
ADMIN_DN = f"CN=Administrator,{USERS}"
# People only (not groups or computers), by either name AD knows them by. Disabled accounts
# are found on purpose: AD then says "disabled" (533) after the right password, and Berth's
# re-check ends their sessions by the disabled bit (see the README's AD recipe).
USER_FILTER = "(&(objectCategory=person)(objectClass=user)(|(sAMAccountName={username})(userPrincipalName={username})))"
LOCKOUT_THRESHOLD = 5
LDAP_PORT, LDAPS_PORT = 389, 636
SAMBA = "/usr/sbin/samba"
SAMBA_TOOL = "/usr/bin/samba-tool"
PORT_LOCK = Path("/tmp/berth-ad.lock")
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "berth-devstack"

# (sAMAccountName, given name, surname, groups it is a direct member of)
PEOPLE: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("alice", "Alice", "Admin", (ADMIN_GROUP, OPS_GROUP)),
    ("olivia", "Olivia", "Ops", (OPS_GROUP,)),
    ("dave", "Dave", "Developer", ()),
    ("erin", "Erin", "Engineer", (NESTED_GROUP,)),
    ("disabled", "Dora", "Disabled", ()),
    ("mustchange", "Max", "Mustchange", ()),
    ("expired", "Ezra", "Expired", ()),
    ("locked", "Lou", "Locked", ()),
)
NORMAL_ACCOUNT, ACCOUNT_DISABLED, DONT_EXPIRE_PASSWORD = 0x200, 0x2, 0x10000


class AdError(RuntimeError):
    """The domain controller could not be provisioned, started or seeded."""


def samba_version() -> str:
    """Samba's version string (the template cache key)."""
    result = subprocess.run([SAMBA, "--version"], capture_output=True, text=True, check=False)
    return result.stdout.strip().split()[-1] if result.returncode == 0 and result.stdout.strip() else "unknown"


def claim_ports() -> int:
    """Take the machine-wide AD lock (non-blocking); return its fd, to be inherited by samba."""
    fd = os.open(PORT_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = Path(f"{PORT_LOCK}.owner").read_text().strip() if Path(f"{PORT_LOCK}.owner").exists() else "?"
        os.close(fd)
        raise AdError(
            f"another AD devstack runs (state dir {owner}); Samba's LDAP ports 389/636 are fixed, so only one"
            " can: stop it with `python -m devstack down --state-dir DIR`"
        ) from None
    if is_listening(LDAP_PORT) or is_listening(LDAPS_PORT):
        os.close(fd)
        raise AdError("something else listens on 127.0.0.1:389 or :636; Samba needs both")
    return fd


def template(admin_password_file: Path | None = None) -> Path:
    """The provisioned, never-started domain for this Samba version, made once per machine."""
    target = CACHE / f"samba-ad-{samba_version()}"
    if (target / "ready").exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    building = target.with_name(target.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    password = os.urandom(12).hex() + "-Aa1!"
    command = [
        SAMBA_TOOL, "domain", "provision", f"--targetdir={building / 'dc'}", f"--realm={REALM}",
        f"--domain={DOMAIN}", f"--adminpass={password}", "--use-rfc2307", "--dns-backend=NONE",
        "--server-role=dc", "--option=interfaces=lo", "--option=bind interfaces only=yes",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise AdError(f"samba-tool domain provision failed: {reason}")
    (building / "dc" / "etc" / "smb.conf").unlink()  # it names the build directory
    write_private(building / "admin-password", password)
    shutil.rmtree(target, ignore_errors=True)
    building.rename(target)
    (target / "ready").write_text("provisioned\n")
    return target


def prepare(ad_dir: Path, cert: Path, key: Path, ca_cert: Path) -> tuple[Path, str]:
    """Copy the template into ``ad_dir/dc`` and write its ``smb.conf``; return it and the admin password."""
    source = template()
    dc = ad_dir / "dc"
    shutil.rmtree(dc, ignore_errors=True)
    shutil.copytree(source / "dc", dc, symlinks=True)
    for sub in ("etc", "run", "cache"):
        (dc / sub).mkdir(parents=True, exist_ok=True)
    conf = dc / "etc" / "smb.conf"
    write_private(conf, render_config(dc, cert, key, ca_cert))
    return conf, (source / "admin-password").read_text().strip()


def render_config(dc: Path, cert: Path, key: Path, ca_cert: Path) -> str:
    """``smb.conf`` for an LDAP-only DC on the loopback interface with the devstack CA's certificate."""
    return f"""# Generated by devstack; rewritten at every start.
[global]
\tnetbios name = BERTHDC
\tworkgroup = {DOMAIN}
\trealm = {REALM}
\tserver role = active directory domain controller
\tserver services = ldap
\tinterfaces = lo
\tbind interfaces only = yes
\tidmap_ldb:use rfc2307 = yes
\tprivate dir = {dc}/private
\tstate directory = {dc}/state
\tcache directory = {dc}/cache
\tlock directory = {dc}
\tpid directory = {dc}/run
\tbinddns dir = {dc}/bind-dns
\tlogging = file
\tlog file = {dc}/log.%m
\ttls enabled = yes
\ttls certfile = {cert}
\ttls keyfile = {key}
\ttls cafile = {ca_cert}
"""


def start(state_dir: Path, conf: Path, log: Path, lock_fd: int) -> procs.ProcRecord:
    """Run ``samba -i`` (foreground) in its own session; it inherits and holds the port lock."""
    write_private(Path(f"{PORT_LOCK}.owner"), f"{state_dir}\n")
    return procs.start(state_dir, "samba", [SAMBA, "-i", "-s", str(conf)], log, pass_fds=(lock_fd,))


def wait_ready(record: procs.ProcRecord, timeout: float = 30.0) -> None:
    """Wait until samba listens on 389 and 636."""
    deadline = time.monotonic() + timeout
    while not (is_listening(LDAP_PORT) and is_listening(LDAPS_PORT)):
        if not procs.is_running(record):
            raise AdError(f"samba exited: {procs.log_tail(record.log, 3) or 'no output'}")
        if time.monotonic() > deadline:
            raise AdError(f"samba did not listen on 389/636 in {timeout:.0f}s")
        time.sleep(0.1)


def admin_connection(ca_cert: Path, admin_password: str):
    """An ldaps:// connection bound as the domain's Administrator."""
    import ldap3  # imported late: only needed here, and it is slow to import

    tls = ldap3.Tls(ca_certs_file=str(ca_cert), validate=ssl.CERT_REQUIRED)
    server = ldap3.Server(f"ldaps://{LOOPBACK}:{LDAPS_PORT}", tls=tls, get_info=ldap3.NONE, connect_timeout=5)
    conn = ldap3.Connection(server, ADMIN_DN, admin_password, receive_timeout=10)
    deadline = time.monotonic() + 20
    while not conn.bind():  # samba listens a moment before its database answers
        if time.monotonic() > deadline:
            raise AdError(f"Administrator bind failed: {conn.result.get('message') or conn.result.get('description')}")
        time.sleep(0.3)
    return conn


def up(state_dir: Path, ca_cert: Path, ca_key: Path, log: Path, service_password: str) -> dict[str, str]:
    """Start and seed the DC for the stack under ``state_dir``; return its part of the environment.

    Raises :class:`AdError`; the caller stops what was recorded.
    """
    from devstack import ad_seed, tls

    ad_dir = state_dir / "ad"
    ad_dir.mkdir(parents=True, exist_ok=True)
    cert, key = ad_dir / "dc.crt", ad_dir / "dc.key"
    tls.issue_server_cert(ca_cert, ca_key, cert, key, hosts=(LOOPBACK, "localhost", f"berthdc.{REALM.lower()}"))
    lock_fd = claim_ports()
    try:
        began = time.monotonic()
        conf, admin_password = prepare(ad_dir, cert, key, ca_cert)
        prepared = time.monotonic()
        record = start(state_dir, conf, log, lock_fd)
    finally:
        os.close(lock_fd)  # samba holds its own copy
    wait_ready(record)
    conn = admin_connection(ca_cert, admin_password)
    try:
        ad_seed.seed(conn, service_password)
    finally:
        conn.unbind()
    ad_seed.lock(str(ca_cert), f"CN=Lou Locked,{USERS}")
    timings = {"prepare": prepared - began, "start_and_seed": time.monotonic() - prepared}
    write_private(ad_dir / "timings", " ".join(f"{k}={v:.2f}" for k, v in timings.items()) + "\n")
    return environment(ca_cert, service_password) | {
        "DEVSTACK_AD_ADMIN_DN": ADMIN_DN,
        "DEVSTACK_AD_ADMIN_PASSWORD": admin_password,
    }


def environment(ca_cert: Path, service_password: str) -> dict[str, str]:
    """Every ``BERTH_LDAP_*`` setting an AD deployment needs, for this DC."""
    return {
        "BERTH_LDAP_URL": f"ldaps://{LOOPBACK}:{LDAPS_PORT}",
        "BERTH_LDAP_START_TLS": "false",
        "BERTH_LDAP_CA": str(ca_cert),
        "BERTH_LDAP_BIND_DN": SERVICE_DN,
        "BERTH_LDAP_BIND_PASSWORD": service_password,
        "BERTH_LDAP_USER_BASE": BASE,
        "BERTH_LDAP_USER_FILTER": USER_FILTER,
        "BERTH_LDAP_USERNAME_ATTRIBUTE": "sAMAccountName",
        "BERTH_LDAP_GROUP_BASE": BASE,
        "BERTH_LDAP_ADMIN_GROUP": ADMIN_GROUP,
        "BERTH_LDAP_OPS_GROUP": OPS_GROUP,
        "BERTH_LDAP_NESTED_GROUPS": "true",
        "BERTH_LDAP_DOMAIN": DOMAIN,
        "DEVSTACK_AD_REALM": REALM,
        "DEVSTACK_AD_STARTTLS_URL": f"ldap://{LOOPBACK}:{LDAP_PORT}",
        "DEVSTACK_DIRECTORY": "ad",
    }
