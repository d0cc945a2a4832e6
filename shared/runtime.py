"""The process's services, built once from settings on first use and shared by every invocation.

Azure Functions keeps a worker process warm between invocations; SDK clients hold connection pools and token
caches, so building them per request would waste both. Nothing is built at import: `function_app.py` stays cheap
to load (cold start), and heavy SDK modules load when first needed.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.clock import Clock, utcnow
from shared.settings import Settings

if TYPE_CHECKING:
    from azure.data.tables import TableServiceClient

    from shared.alerts import AlertService
    from shared.connections import ConnectionService
    from shared.crypto import Cipher
    from shared.export.service import ExportService
    from shared.flow_purge import FlowPurge
    from shared.freebusy import FreeBusyService
    from shared.health import HealthService
    from shared.integrations import IntegrationService
    from shared.models import Connection
    from shared.notifications import NotificationService
    from shared.oauth import OAuthService
    from shared.outbound import Resolver
    from shared.pull import PullService
    from shared.rooms import RoomService
    from shared.secrets import SecretStore
    from shared.storage.queues import QueueSender
    from shared.storage.repositories import Repositories
    from shared.subscriptions import SubscriptionService
    from shared.system_keys import SystemKeyService
    from shared.token_health import TokenHealthService
    from shared.webhooks import WebhookService


@dataclass
class Services:
    settings: Settings
    tables: TableServiceClient
    repos: Repositories
    queues: QueueSender
    secrets: SecretStore
    cipher: Cipher
    health: HealthService
    integrations: IntegrationService
    oauth: OAuthService
    connections: ConnectionService
    alerts: AlertService
    token_health: TokenHealthService
    export: ExportService
    freebusy: FreeBusyService
    pull: PullService
    webhooks: WebhookService
    flow_purge: FlowPurge
    system_keys: SystemKeyService
    subscriptions: SubscriptionService
    notifications: NotificationService
    rooms: RoomService


def build_services(settings: Settings, clock: Clock = utcnow, resolver: Resolver | None = None) -> Services:
    """Everything wired once; `clock` is injectable so tests can run the services in simulated time, `resolver`
    (the DNS lookups behind caller-set URLs) so they can make a name's answer change."""
    from shared.alerts import AlertService
    from shared.connections import ConnectionAccess, ConnectionService
    from shared.crypto import Cipher, DataKeyring
    from shared.export.engine import SyncEngine
    from shared.export.service import ExportService
    from shared.flow_purge import FlowPurge
    from shared.freebusy import FreeBusyService
    from shared.graph.batch import BatchExecutor
    from shared.graph.client import GraphClient
    from shared.health import HealthService, storage_check
    from shared.identity import IdentityPlatform, http_session
    from shared.integrations import ClientSecrets, IntegrationService
    from shared.notifications import NotificationService, PullCoalescer
    from shared.oauth import OAuthService
    from shared.outbound import system_resolver
    from shared.pull import PullService
    from shared.rooms import RoomService
    from shared.secrets import SecretStore, TransactionKey
    from shared.storage.queues import QueueSender
    from shared.storage.repositories import Repositories
    from shared.storage.tables import table_service
    from shared.subscriptions import SubscriptionService
    from shared.system_keys import SystemKeyService
    from shared.token_health import TokenHealthService
    from shared.tokens import TokenService
    from shared.webhooks import WebhookService, webhook_client

    tables = table_service(settings)
    repos = Repositories.build(tables, settings.table_prefix)
    secrets = SecretStore.from_settings(settings)
    queues = QueueSender.from_settings(settings)
    cipher = Cipher(DataKeyring(secrets, settings.data_key_secret_name))
    session = http_session(settings)
    identity = IdentityPlatform(settings, session)
    client_secrets = ClientSecrets(secrets)
    alerts = AlertService(repos.alerts, retention_days=settings.alert_resolved_retention_days, clock=clock)
    outbound = webhook_client(settings, resolver or system_resolver)
    integrations = IntegrationService(repos.integrations, repos.locations, secrets, client_secrets, identity,
                                      settings, clock, outbound=outbound, connections=repos.connections)
    tokens = TokenService(repos.token_caches, repos.refresh_schedule, cipher, identity, client_secrets,
                          refresh_idle_days=settings.token_refresh_idle_days, clock=clock)
    graph = GraphClient(settings.graph_base_url, session)
    access = ConnectionAccess(repos.connections, integrations, tokens, alerts, clock, graph=graph)
    executor = BatchExecutor(graph, global_limit=settings.graph_global_concurrency,
                             wall=lambda: clock().timestamp())
    engine = SyncEngine(repos.sync_records, repos.retries, executor, clock, transaction_key=TransactionKey(secrets))
    export = ExportService(repos, access, integrations, engine, queues, alerts, clock)
    webhooks = WebhookService(repos, secrets, queues, alerts, outbound, clock=clock)
    room_pulls = PullCoalescer(repos.subscription_lookups, queues, window_seconds=settings.push_coalesce_seconds,
                               clock=clock)
    subscriptions = SubscriptionService(repos, access, integrations, graph, room_pulls, settings, clock)
    pull = PullService(repos, access, integrations, graph, queues, horizon_days=settings.pull_horizon_days,
                       clock=clock, on_published=webhooks.on_published, sweep_filter=subscriptions.sweep_plan)
    return Services(
        settings=settings,
        tables=tables,
        repos=repos,
        queues=queues,
        secrets=secrets,
        cipher=cipher,
        health=HealthService({"storage": storage_check(tables), "key_vault": secrets.ping}),
        integrations=integrations,
        oauth=OAuthService(repos.flows, repos.connections, integrations, tokens, alerts, identity, cipher, settings,
                           clock),
        connections=ConnectionService(repos.connections, access, integrations, tokens, graph, clock,
                                      event_remover=export.remove_events,
                                      on_change=_each(pull.track, subscriptions.on_change),
                                      before_remove=subscriptions.before_remove),
        alerts=alerts,
        token_health=TokenHealthService(repos.refresh_schedule, repos.connections, repos.integrations, integrations,
                                        tokens, access, identity, alerts, queues, settings, clock),
        export=export,
        freebusy=FreeBusyService(access, graph),
        pull=pull,
        webhooks=webhooks,
        flow_purge=FlowPurge(repos.flows, clock),
        system_keys=SystemKeyService(repos.systems, required=settings.system_keys_required, clock=clock),
        subscriptions=subscriptions,
        notifications=NotificationService(repos.subscription_lookups, queues, room_pulls),
        rooms=RoomService(access, integrations, graph),
    )


def _each(*hooks: Callable[[Connection], None]) -> Callable[[Connection], None]:
    """One connection hook that runs several, in order (the pull index first, then the subscription)."""
    def run(connection: Connection) -> None:
        for hook in hooks:
            hook(connection)

    return run


_lock = threading.Lock()
_tables_ready = threading.Event()


@functools.cache
def _cached() -> Services:
    return build_services(Settings.from_env())


def services(*, ensure_tables: bool = True) -> Services:
    """The shared services of this process (thread-safe first build). Tables are created on first use if the
    deployment did not create them (locally; in Azure the infrastructure template declares them); the health
    probe skips that so it answers fast while storage is down."""
    with _lock:
        built = _cached()
    if ensure_tables and not _tables_ready.is_set():
        built.repos.ensure_tables()  # DependencyUnavailable propagates as a 503; the next call tries again
        _tables_ready.set()
    return built


def reset() -> None:
    """Forget the built services (the local host calls this when it reloads settings)."""
    with _lock:
        _cached.cache_clear()
        _tables_ready.clear()
