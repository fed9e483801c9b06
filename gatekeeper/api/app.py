"""The app factory: builds the whole service from settings, nothing from globals."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

import anyio.to_thread
from fastapi import FastAPI
from pydantic import SecretStr

from gatekeeper import __version__, logs
from gatekeeper.api import errors, ops, page, receivers, v1
from gatekeeper.api.middleware import BodyLimit, RequestMetrics
from gatekeeper.domain.decision import DecideOptions
from gatekeeper.domain.types import Verdict
from gatekeeper.metrics import Metrics
from gatekeeper.notifiers.github import GitHubNotifier
from gatekeeper.notifiers.gitlab import GitLabNotifier
from gatekeeper.people import ReleaseManager
from gatekeeper.receivers.registry import registry
from gatekeeper.reload import ConfigHolder, Housekeeper
from gatekeeper.service import GateService, system_clock
from gatekeeper.settings import Settings
from gatekeeper.store.pg_async import AsyncGateStore
from gatekeeper.store.sql import SqlReleaseStore
from gatekeeper.tokens import TokenStore
from gatekeeper.webhooks import WebhookService

logger = logging.getLogger(__name__)


def build_service(settings: Settings, clock: Callable[[], datetime], metrics: Metrics) -> GateService:
    """Store (migrated or refused), configuration (loaded) and the orchestrator."""
    store = SqlReleaseStore.from_url(settings.DATABASE_URL)
    if settings.AUTO_MIGRATE:
        store.upgrade()
    store.check_migrated()
    holder = ConfigHolder(settings.POLICIES_DIR, settings.CALENDARS_DIR, clock)
    holder.on_change(lambda state: metrics.config_loaded(state.status))
    holder.reload()
    options = DecideOptions(
        ungoverned=Verdict(settings.UNGOVERNED), retry_delay=timedelta(seconds=settings.retry_delay_seconds)
    )
    postgresql = store.engine.dialect.name == "postgresql"
    fast = AsyncGateStore(settings.DATABASE_URL, lock_timeout=settings.LOCK_TIMEOUT) if postgresql else None
    return GateService(store=store, config=holder, clock=clock, options=options, metrics=metrics, fast=fast)


def build_webhooks(settings: Settings, service: GateService) -> WebhookService:
    """Receivers with their inbound secrets, and the notifiers whose API tokens are set."""

    def secret(value: SecretStr | None) -> str | None:
        return value.get_secret_value() if value is not None else None

    github_token, gitlab_token = secret(settings.GITHUB_API_TOKEN), secret(settings.GITLAB_API_TOKEN)
    return WebhookService(
        gate=service,
        receivers=registry(),
        secrets={
            "github": secret(settings.GITHUB_SECRET),
            "gitlab": secret(settings.GITLAB_TOKEN),
            "flux": secret(settings.FLUX_SECRET),
            "argocd": secret(settings.ARGOCD_TOKEN),
        },
        public_url=settings.PUBLIC_URL,
        github=GitHubNotifier(settings.GITHUB_API_URL, github_token) if github_token else None,
        gitlab=GitLabNotifier(settings.GITLAB_API_URL, gitlab_token) if gitlab_token else None,
    )


def create_app(settings: Settings, *, clock: Callable[[], datetime] = system_clock) -> FastAPI:
    """The FastAPI app for ``settings`` (raises NotMigratedError on an old database)."""
    metrics = Metrics()
    service = build_service(settings, clock, metrics)
    tokens = TokenStore(settings.TOKENS_FILE)
    retention = timedelta(seconds=settings.delivery_retention_seconds)

    def prune() -> None:
        service.prune(retention)

    def chain_audit() -> None:
        service.store.chain_audit(wait=False)  # another worker chaining: leave it the records

    webhooks = build_webhooks(settings, service)
    housekeeper = Housekeeper(
        [
            (service.config.poll, settings.RELOAD_INTERVAL),
            (tokens.refresh, settings.RELOAD_INTERVAL),
            (prune, 3600.0),
            (chain_audit, 0.25),  # often, so each run is short
            (webhooks.answer_reviews, settings.REVIEW_INTERVAL),
        ],
        tick=min(settings.RELOAD_INTERVAL, 0.25),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.THREADS
        if service.fast is not None:
            await service.fast.open()
        housekeeper.start()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGHUP, lambda *_: service.config.reload())
        yield
        housekeeper.stop()
        app.state.webhooks.pool.shutdown(wait=True)
        service.store.engine.dispose()
        if service.fast is not None:
            await service.fast.close()

    app = FastAPI(
        title="gatekeeper",
        version=__version__,
        summary="May this release go out now? Business calendars, drift and provenance for GitOps releases.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.manager = ReleaseManager(service)
    app.state.webhooks = webhooks
    app.state.tokens = tokens
    app.state.metrics = metrics
    app.state.settings = settings
    errors.install(app)
    app.include_router(ops.router)
    app.include_router(v1.router)
    app.include_router(receivers.router)
    app.include_router(page.router)

    app.add_middleware(BodyLimit, max_bytes=settings.MAX_BODY_BYTES)
    app.add_middleware(RequestMetrics, metrics=metrics)
    return app


def app_from_environment() -> FastAPI:
    """The factory each worker process of ``gatekeeper serve`` (WORKERS > 1) calls: settings
    from the environment, as the parent process read them."""
    settings = Settings()
    logs.configure(settings.LOG_FORMAT)
    return create_app(settings)
