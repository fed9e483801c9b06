"""The app factory: builds the whole service from settings, nothing from globals."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta

import anyio
import anyio.to_thread
from fastapi import FastAPI
from pydantic import SecretStr

from gatekeeper import __version__, audit, logs
from gatekeeper import drift as drift_module
from gatekeeper.actions import registry
from gatekeeper.actions.argocd_sync import ArgoCdSyncHandler
from gatekeeper.actions.commit_status import CommitStatusHandler
from gatekeeper.actions.deployment_review import DeploymentReviewHandler
from gatekeeper.actions.flux_gate import FluxGateHandler
from gatekeeper.actions.notification import NotificationHandler
from gatekeeper.actions.rollback import RollbackHandler
from gatekeeper.actuators.argocd import ArgoCdActuator
from gatekeeper.actuators.flux import FluxActuator
from gatekeeper.actuators.git import GitReverter
from gatekeeper.announce import Announcer
from gatekeeper.api import errors, freezes, openapi, ops, page, receivers, v1
from gatekeeper.api.middleware import BodyLimit, RequestMetrics
from gatekeeper.domain.decision import DecideOptions
from gatekeeper.domain.policy import Policy
from gatekeeper.domain.types import Verdict
from gatekeeper.drift import DriftReader
from gatekeeper.facts import FactGatherer, FreezeCache
from gatekeeper.feeds import FeedBook, load_credentials
from gatekeeper.flux_windows import FluxWindows
from gatekeeper.loops import Loop
from gatekeeper.metrics import Metrics
from gatekeeper.notifiers.endpoints import Notifier, hide_urls, load_endpoints
from gatekeeper.notifiers.github import GitHubNotifier
from gatekeeper.notifiers.gitlab import GitLabNotifier
from gatekeeper.notifiers.slack import SlackNotifier
from gatekeeper.notifiers.teams import TeamsNotifier
from gatekeeper.notifiers.webhook import WebhookNotifier
from gatekeeper.people import ReleaseManager
from gatekeeper.ports import Clock, FactReader
from gatekeeper.provenance import ProvenanceReader
from gatekeeper.readers.calendar_feeds import HttpxFeedReader
from gatekeeper.readers.cosign import CryptographyVerifier
from gatekeeper.readers.git import Pygit2GitReader
from gatekeeper.readers.kubernetes import KubernetesClusterReader
from gatekeeper.readers.registry import HttpRegistryClient, docker_credentials
from gatekeeper.readers.sigstore import SigstoreBundleVerifier
from gatekeeper.receivers.registry import registry as receiver_registry
from gatekeeper.reload import ConfigHolder
from gatekeeper.rollbacks import RevertRecorder
from gatekeeper.scheduler import Backoff, Scheduler
from gatekeeper.service import GateService, system_clock
from gatekeeper.settings import Settings
from gatekeeper.store.sql import SqlReleaseStore
from gatekeeper.tokens import TokenStore
from gatekeeper.webhooks import WebhookService

logger = logging.getLogger(__name__)


def build_feeds(settings: Settings, clock: Clock, metrics: Metrics) -> tuple[FeedBook, HttpxFeedReader]:
    """The published calendars' book, started from the cache on disk (no network at start-up)."""
    reader = HttpxFeedReader(
        timeout=settings.calendar_fetch_timeout_seconds,
        max_bytes=settings.CALENDAR_MAX_BYTES,
        retries=settings.CALENDAR_FETCH_RETRIES,
        max_redirects=settings.CALENDAR_MAX_REDIRECTS,
        credentials=load_credentials(settings.CALENDAR_CREDENTIALS_FILE),
    )
    book = FeedBook(clock, cache_dir=settings.CALENDAR_CACHE_DIR, fetcher=reader, observer=metrics.feed_observed)
    loaded = book.load_cache()
    if loaded:
        logger.info("calendar feeds: %d cached copies loaded from %s", loaded, settings.CALENDAR_CACHE_DIR)
    return book, reader


def build_service(
    settings: Settings,
    clock: Clock,
    metrics: Metrics,
    readers: Sequence[FactReader] = (),
    status_sources: frozenset[str] = frozenset(),
    feeds: FeedBook | None = None,
) -> GateService:
    """Store (migrated or refused), configuration (loaded), fact readers and the orchestrator."""
    store = SqlReleaseStore.from_url(settings.DATABASE_URL, audit_key=settings.audit_key)
    audit.key_warning(settings.audit_key)
    if settings.AUTO_MIGRATE:
        store.upgrade()
    store.check_migrated()
    holder = ConfigHolder(settings.POLICIES_DIR, settings.CALENDARS_DIR, clock, feeds)
    holder.on_change(lambda state: metrics.config_loaded(state.status))
    holder.reload()
    options = DecideOptions(
        ungoverned=Verdict(settings.UNGOVERNED), retry_delay=timedelta(seconds=settings.retry_delay_seconds)
    )
    timeout = float(settings.seconds("FACT_TIMEOUT"))
    drift = build_drift_reader(settings, store, timeout)
    signed = build_provenance_reader(settings, drift, timeout)
    frozen = FreezeCache(store, clock)
    facts = FactGatherer(holder, [*readers, drift, signed], timeout=timeout, freezes=frozen)
    return GateService(
        store=store,
        config=holder,
        clock=clock,
        options=options,
        metrics=metrics,
        facts=facts,
        public_url=settings.PUBLIC_URL,
        status_sources=status_sources,
    )


def build_drift_reader(settings: Settings, store: SqlReleaseStore, timeout: float) -> DriftReader:
    """Git (bare mirrors under GIT_CACHE_DIR) and the clusters of KUBECONFIG, read only for the
    policies whose drift rule is on."""
    git = Pygit2GitReader(
        settings.GIT_CACHE_DIR,
        token=settings.GIT_TOKEN.get_secret_value() if settings.GIT_TOKEN is not None else None,
        ssh_key_file=settings.GIT_SSH_KEY_FILE,
    )
    cluster = KubernetesClusterReader(settings.KUBECONFIG, timeout=timeout)
    return DriftReader(
        git, cluster, argocd_namespace=settings.ARGOCD_NAMESPACE, last_applied=drift_module.last_applied_in(store)
    )


def build_provenance_reader(settings: Settings, drift: DriftReader, timeout: float) -> ProvenanceReader:
    """Images from the manifests at the requested revision (the drift reader's Git reader and
    target sources), checked against their registries; read only for policies with provenance rules."""
    registry = HttpRegistryClient(
        credentials=docker_credentials(settings.REGISTRY_AUTH_FILE),
        insecure=[item.strip() for item in settings.INSECURE_REGISTRIES.split(",") if item.strip()],
        timeout=timeout,
    )

    def locate(target: str, policy: Policy) -> tuple[str, str]:
        if policy.source.repo and policy.source.path is not None:  # spec.source says it all: no cluster read
            return policy.source.repo, policy.source.path
        source = drift.source(target, policy)
        return source.repo, source.path

    bundles = SigstoreBundleVerifier(settings.SIGSTORE_TRUSTED_ROOT)  # a file that does not load fails start-up
    return ProvenanceReader(drift.git, registry, CryptographyVerifier(), locate, bundles=bundles)


def build_notifiers(settings: Settings) -> dict[str, GitHubNotifier | GitLabNotifier]:
    """The notifiers whose API tokens are set, by source."""
    found: dict[str, GitHubNotifier | GitLabNotifier] = {}
    if settings.GITHUB_API_TOKEN is not None:
        found["github"] = GitHubNotifier(settings.GITHUB_API_URL, settings.GITHUB_API_TOKEN.get_secret_value())
    if settings.GITLAB_API_TOKEN is not None:
        found["gitlab"] = GitLabNotifier(settings.GITLAB_API_URL, settings.GITLAB_API_TOKEN.get_secret_value())
    return found


def build_argocd(settings: Settings) -> ArgoCdActuator | None:
    """Argo CD's API, where ``ARGOCD_SERVER`` and ``ARGOCD_API_TOKEN`` are both set."""
    if settings.ARGOCD_SERVER is None or settings.ARGOCD_API_TOKEN is None:
        return None
    token = settings.ARGOCD_API_TOKEN.get_secret_value()
    return ArgoCdActuator(settings.ARGOCD_SERVER, token, control_namespace=settings.ARGOCD_NAMESPACE)


def build_reverter(settings: Settings) -> GitReverter:
    """Reverts in config repositories, with the credentials the Git reader uses."""
    token = settings.GIT_TOKEN.get_secret_value() if settings.GIT_TOKEN is not None else None
    return GitReverter(token=token, ssh_key_file=settings.GIT_SSH_KEY_FILE)


def build_messengers(settings: Settings, clock: Clock) -> dict[str, Notifier]:
    """The notifiers of NOTIFICATIONS_FILE's endpoints, by kind (one httpx client each)."""
    timeout = float(settings.seconds("NOTIFICATION_TIMEOUT"))
    found: list[Notifier] = [WebhookNotifier(clock, timeout), SlackNotifier(timeout), TeamsNotifier(timeout)]
    return {notifier.kind: notifier for notifier in found}


def build_scheduler(
    settings: Settings,
    service: GateService,
    notifiers: dict[str, GitHubNotifier | GitLabNotifier],
    argocd: ArgoCdActuator | None = None,
    flux: FluxActuator | None = None,
    messengers: dict[str, Notifier] | None = None,
) -> Scheduler:
    """The outbox handlers, registered by kind, and the scheduler that runs them."""
    github = notifiers.get("github")
    handlers = registry(
        [
            CommitStatusHandler(notifiers),
            ArgoCdSyncHandler(argocd, service.clock),
            RollbackHandler(
                argocd,
                build_reverter(settings),
                service.store,
                service.clock,
                cluster=KubernetesClusterReader(settings.KUBECONFIG, timeout=float(settings.seconds("FACT_TIMEOUT"))),
                on_revert=RevertRecorder(service),
            ),
            FluxGateHandler(flux),
            NotificationHandler(service.notify, messengers or {}),
            DeploymentReviewHandler(
                github if isinstance(github, GitHubNotifier) else None,
                settings.PUBLIC_URL,
                timedelta(seconds=settings.REVIEW_INTERVAL),
                service.clock,
            ),
        ]
    )
    backoff = Backoff(
        first=timedelta(seconds=settings.seconds("ACTION_RETRY")),
        cap=timedelta(seconds=settings.seconds("ACTION_RETRY_MAX")),
        max_attempts=settings.ACTION_MAX_ATTEMPTS,
    )
    return Scheduler(service, handlers, lease_seconds=settings.seconds("ACTION_LEASE"), backoff=backoff)


def build_webhooks(settings: Settings, service: GateService) -> WebhookService:
    """Receivers with their inbound secrets."""

    def secret(value: SecretStr | None) -> str | None:
        return value.get_secret_value() if value is not None else None

    announcer = Announcer(
        service.config,
        KubernetesClusterReader(settings.KUBECONFIG, timeout=float(settings.seconds("FACT_TIMEOUT"))),
        argocd_namespace=settings.ARGOCD_NAMESPACE,
    )
    return WebhookService(
        gate=service,
        announcer=announcer,
        receivers=receiver_registry(settings.ARGOCD_NAMESPACE),
        secrets={
            "github": secret(settings.GITHUB_SECRET),
            "gitlab": secret(settings.GITLAB_TOKEN),
            "flux": secret(settings.FLUX_SECRET),
            "argocd": secret(settings.ARGOCD_TOKEN),
        },
    )


def create_app(
    settings: Settings, *, clock: Clock = system_clock, readers: Sequence[FactReader] = ()
) -> FastAPI:
    """The FastAPI app for ``settings`` (raises NotMigratedError on an old database).

    ``readers`` are the fact sources decisions wait for (each with FACT_TIMEOUT).
    """
    metrics = Metrics()
    notifiers = build_notifiers(settings)
    feeds, feed_reader = build_feeds(settings, clock, metrics)
    service = build_service(settings, clock, metrics, readers, frozenset(notifiers), feeds)
    tokens = TokenStore(settings.TOKENS_FILE)
    retention = timedelta(seconds=settings.delivery_retention_seconds)
    argocd = build_argocd(settings)
    service.argocd_sync = argocd is not None
    timeout = float(settings.seconds("FACT_TIMEOUT"))
    flux = FluxActuator(settings.KUBECONFIG, timeout=timeout) if settings.FLUX_GATE else None
    service.flux_gate = flux is not None
    service.notify = load_endpoints(settings.NOTIFICATIONS_FILE)
    messengers = build_messengers(settings, clock) if service.notify else {}
    shown_urls = hide_urls(service.notify)
    scheduler = build_scheduler(settings, service, notifiers, messengers=messengers, argocd=argocd, flux=flux)

    def prune() -> None:
        service.prune(retention)

    def chain_audit() -> None:
        # Another worker chaining: leave it the records. Each append publishes the new head.
        if service.store.chain_audit(wait=False):
            seq, digest = service.store.audit_head(chain=False)
            logger.info("audit head %d:%s", seq, digest, extra={"audit_seq": seq, "audit_hash": digest})

    flux_windows = FluxWindows(service, interval=settings.FLUX_WINDOW_INTERVAL)

    def deferrals() -> None:
        service.redecide_begun()
        service.redecide_due()
        service.verify_due()
        flux_windows.run_once()

    loops = [
        Loop("reload", service.config.poll, settings.RELOAD_INTERVAL),
        Loop("tokens", tokens.refresh, settings.RELOAD_INTERVAL),
        Loop("prune", prune, 3600.0),
        Loop("audit-chainer", chain_audit, 0.25),
        Loop("deferrals", deferrals, settings.SCHEDULER_INTERVAL),
        scheduler_loop := Loop("scheduler", scheduler.run_once, settings.SCHEDULER_INTERVAL),
        feeds_loop := Loop("calendar-feeds", service.config.refresh_feeds, settings.CALENDAR_REFRESH_INTERVAL),
    ]
    service.wake = scheduler_loop.wake
    # A policy that names a new feed gets it fetched now, not at the end of the interval.
    service.config.on_change(lambda _state: feeds_loop.wake() if service.config.feeds_unknown() else None)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.THREADS
        app.state.webhook_slots = anyio.CapacityLimiter(settings.WEBHOOK_CONCURRENCY)
        for loop in loops:
            loop.start()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGHUP, lambda *_: service.config.reload())
        yield
        scheduler.stopping()  # claims nothing more: its loop's pass ends without waiting for the running
        for loop in loops:
            loop.stop()
        scheduler.close()
        feed_reader.close()
        for notifier in notifiers.values():
            notifier.close()
        if argocd is not None:
            argocd.close()
        if flux is not None:
            flux.close()
        for messenger in messengers.values():
            messenger.close()
        shown_urls()
        if service.facts is not None:
            service.facts.close()
        service.store.close()

    app = FastAPI(
        title="gatekeeper",
        version=__version__,
        summary="May this release go out now? Business calendars, drift and provenance for GitOps releases.",
        lifespan=lifespan,
        docs_url=None,  # served by openapi.install, with its assets (no CDN)
        redoc_url=None,
    )
    app.state.service = service
    app.state.manager = ReleaseManager(service)
    app.state.webhooks = build_webhooks(settings, service)
    app.state.scheduler = scheduler
    app.state.tokens = tokens
    app.state.metrics = metrics
    app.state.settings = settings
    errors.install(app)
    app.include_router(ops.router)
    app.include_router(v1.router)
    app.include_router(freezes.router)
    app.include_router(receivers.router)
    app.include_router(page.router)
    openapi.install(app)

    app.add_middleware(
        BodyLimit,
        max_bytes=settings.MAX_BODY_BYTES,
        timeout=float(settings.body_timeout_seconds),
        in_flight=settings.BODIES_IN_FLIGHT,
    )
    app.add_middleware(RequestMetrics, metrics=metrics)
    return app


def app_from_environment() -> FastAPI:
    """The factory each worker process of ``gatekeeper serve`` (WORKERS > 1) calls: settings
    from the environment, as the parent process read them."""
    settings = Settings()
    logs.configure(settings.LOG_FORMAT)
    return create_app(settings)
