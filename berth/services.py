"""Builds Berth's long-lived services from Settings (the web layer keeps one set)."""

from __future__ import annotations

from dataclasses import dataclass

from berth.audit import AuditLog
from berth.auth.access_tokens import AccessTokens
from berth.auth.directory import Directory
from berth.auth.login import BasicAuthCache, LoginService
from berth.auth.rules import AccessRules, load_rules
from berth.auth.sessions import SessionStore
from berth.auth.throttle import LoginThrottle
from berth.auth.token_server import DELETE_ACTIONS, SELF_ACTIONS, TokenServer, self_token_provider
from berth.auth.tokens import SigningKeys, TokenIssuer, signing_dir
from berth.catalog.service import CatalogService
from berth.catalog.streaming import Streaming
from berth.config import Settings
from berth.db import Database
from berth.events.ingest import EventIngest
from berth.events.secret import events_secret
from berth.events.store import EventStore
from berth.health.metrics import observe_registry_request
from berth.health.monitor import HealthMonitor
from berth.health.probes import build_probes
from berth.jobs.kinds import job_definitions
from berth.jobs.runner import JobRunner
from berth.jobs.schedule import scheduled_ticks
from berth.jobs.store import JobStore
from berth.registry.client import RegistryClient
from berth.storage.history import StorageAccounting


@dataclass
class Services:
    """The objects every request may need, built once per process."""

    settings: Settings
    db: Database
    audit: AuditLog
    directory: Directory
    login: LoginService
    sessions: SessionStore
    basic_auth_cache: BasicAuthCache
    registry: RegistryClient
    catalog: CatalogService
    streaming: Streaming
    health: HealthMonitor
    jobs: JobStore
    runner: JobRunner
    access_rules: AccessRules
    access_tokens: AccessTokens
    token_server: TokenServer
    events: EventIngest
    events_secret: str
    storage: StorageAccounting

    def deleting_registry(self) -> RegistryClient:
        """A registry client whose own tokens may carry ``delete``: for admin actions and jobs only."""
        return registry_client(self.settings, delete=True)


def registry_client(settings: Settings, *, delete: bool = False, issuer: TokenIssuer | None = None) -> RegistryClient:
    """A client of the registry; with ``delete`` its in-process tokens may also delete (admin use only)."""
    if issuer is None:
        issuer = TokenIssuer(SigningKeys(signing_dir(settings.data_dir)).load(), settings.registry_service or "")
    realm = f"{settings.public_url}/auth/token" if settings.public_url else None
    return RegistryClient(
        settings.registry_url,
        ca_bundle=settings.registry_ca,
        username=settings.registry_username,
        password=settings.registry_password,
        timeout=settings.registry_timeout,
        pool_size=2 * settings.fetch_workers + 4,  # the request pool, a shared long read, refreshes
        observer=observe_registry_request,
        token_provider=self_token_provider(issuer, realm, DELETE_ACTIONS if delete else SELF_ACTIONS),
        token_realms=settings.registry_token_realms + ((settings.public_url,) if settings.public_url else ()),
    )


def build_services(settings: Settings) -> Services:
    """Wire the domain objects together for these settings."""
    db = Database(settings.database_path)
    audit = AuditLog(db)
    directory = Directory(
        settings.ldap_url,
        settings.ldap_user_base,
        settings.ldap_group_base,
        settings.ldap_admin_group,
        settings.ldap_ops_group,
        user_filter=settings.ldap_user_filter,
        username_attribute=settings.ldap_username_attribute,
        nested_groups=settings.ldap_nested_groups,
        domain=settings.ldap_domain,
        bind_dn=settings.ldap_bind_dn,
        bind_password=settings.ldap_bind_password,
        start_tls=settings.ldap_start_tls,
        ca_file=settings.ldap_ca,
        timeout=settings.ldap_timeout,
        developer_group=settings.ldap_developer_group,
    )
    throttle = LoginThrottle(
        db,
        settings.login_max_failures,
        settings.login_address_max_failures,
        settings.login_window,
        delay=settings.login_delay,
        max_delay=settings.login_max_delay,
    )
    login = LoginService(directory, throttle, audit)
    basic_auth_cache = BasicAuthCache(settings.secret_key)
    access_rules = load_rules(settings.access_rules, settings.anonymous_pull)
    issuer = TokenIssuer(SigningKeys(signing_dir(settings.data_dir)).load(), settings.registry_service or "")
    access_tokens = AccessTokens(db, audit)
    registry = registry_client(settings, issuer=issuer)
    catalog = CatalogService(registry, db, settings.cache_ttl, settings.fetch_workers)
    health = HealthMonitor(
        db,
        build_probes(settings, registry, catalog, directory),
        interval=settings.health_interval,
        background=settings.background,
    )
    jobs = JobStore(db, audit, settings.job_stale_seconds)
    jobs.mark_interrupted()

    def capacity() -> dict:
        return ((health.snapshot().get("nfs") or {}).get("details") or {}).get("capacity") or {}

    return Services(
        settings=settings,
        db=db,
        audit=audit,
        directory=directory,
        login=login,
        sessions=SessionStore(db, settings.session_lifetime),
        basic_auth_cache=basic_auth_cache,
        registry=registry,
        catalog=catalog,
        streaming=Streaming(catalog, db),
        health=health,
        jobs=jobs,
        runner=JobRunner(
            jobs,
            lambda: job_definitions(settings),
            background=settings.background,
            tick=scheduled_ticks(settings, jobs),
        ),
        access_rules=access_rules,
        access_tokens=access_tokens,
        token_server=TokenServer(issuer, access_rules, login, basic_auth_cache, directory, access_tokens, audit),
        events=EventIngest(EventStore(db, settings.events_retention_days), catalog),
        events_secret=events_secret(settings.events_secret, settings.data_dir),
        storage=StorageAccounting(db, catalog, capacity, workers=settings.fetch_workers),
    )
