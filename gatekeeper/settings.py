"""Settings: one pydantic-settings class, environment prefix ``GATEKEEPER_`` (DESIGN §7).

Built once (in the app factory or the CLI) and passed down; never a module-level singleton.
Invalid values fail at start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gatekeeper.domain.durations import Duration, InvalidDurationError


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEKEEPER_", env_nested_delimiter="__", extra="ignore")

    DATABASE_URL: str = Field(
        "sqlite:///./gatekeeper.db",
        description="SQLAlchemy URL; SQLite is the embedded default, postgresql+psycopg://... in production.",
    )
    AUTO_MIGRATE: bool = Field(False, description="Run database migrations at start-up instead of refusing.")
    POLICIES_DIR: Path = Field(Path("./policies"), description="Directory of ReleasePolicy YAML files.")
    CALENDARS_DIR: Path = Field(Path("./calendars"), description="Directory of .ics files policies refer to.")
    CALENDAR_CACHE_DIR: Path = Field(
        Path("./.gatekeeper/calendars"),
        description=(
            "Where the last good copy of each published calendar (ics: https://...) is kept, so a restart or a "
            "replica starts from it without the network."
        ),
    )
    CALENDAR_CREDENTIALS_FILE: Path | None = Field(
        None,
        description=(
            "YAML mapping host -> {token: ...} (bearer) or {username, password} (basic) for published calendars "
            "that need credentials (never in a policy file). Read at start-up; a bad file fails it."
        ),
    )
    CALENDAR_REFRESH_INTERVAL: float = Field(
        900.0,
        gt=0,
        description=(
            "Seconds between fetches of each published calendar (conditional: an unchanged feed costs a 304 and "
            "no parse). A change on the server reaches decisions within one interval."
        ),
    )
    CALENDAR_FETCH_TIMEOUT: str = Field(
        "10s", description="Timeout of one attempt to fetch a published calendar (duration; connect and each read)."
    )
    CALENDAR_FETCH_RETRIES: int = Field(
        2,
        ge=0,
        le=10,
        description="Retries of a failed fetch (connection error, 429, 5xx) in one refresh; backoff from 0.5s.",
    )
    CALENDAR_MAX_BYTES: int = Field(
        10_485_760, gt=0, description="Largest published calendar accepted, in bytes (a larger one is rejected)."
    )
    CALENDAR_MAX_REDIRECTS: int = Field(5, ge=0, le=20, description="Redirects followed when fetching a calendar.")
    TOKENS_FILE: Path | None = Field(None, description="YAML list of API tokens (sha256 hashes) and roles.")
    GITHUB_SECRET: SecretStr | None = Field(None, description="HMAC secret of GitHub webhooks (unset: route 404).")
    GITLAB_TOKEN: SecretStr | None = Field(None, description="X-Gitlab-Token of GitLab webhooks (unset: route 404).")
    FLUX_SECRET: SecretStr | None = Field(None, description="HMAC key of the Flux generic-hmac Provider.")
    ARGOCD_TOKEN: SecretStr | None = Field(None, description="Bearer token Argo CD notifications send.")
    GITHUB_API_TOKEN: SecretStr | None = Field(None, description="Token for GitHub commit statuses and reviews.")
    GITLAB_API_TOKEN: SecretStr | None = Field(None, description="Token for GitLab commit statuses.")
    GITHUB_API_URL: str = Field(
        "https://api.github.com", description="GitHub REST API base URL (GHES: https://HOST/api/v3)."
    )
    GITLAB_API_URL: str = Field("https://gitlab.com/api/v4", description="GitLab REST API base URL.")
    ARGOCD_SERVER: str | None = Field(None, description="Argo CD API base URL for sync and rollback.")
    ARGOCD_API_TOKEN: SecretStr | None = Field(None, description="Argo CD API token.")
    PUBLIC_URL: str = Field("http://127.0.0.1:8080", description="Base URL used in links (commit statuses).")
    MAX_BODY_BYTES: int = Field(1_048_576, gt=0, description="Largest request body accepted, in bytes (413 above).")
    BODY_TIMEOUT: str = Field(
        "10s",
        description=(
            "How long a request body may take to arrive, from the request's start (duration; 408 after it): a "
            "client that sends its headers and stalls holds a connection and a buffer no longer than this."
        ),
    )
    BODIES_IN_FLIGHT: int = Field(
        64,
        ge=1,
        description=(
            "Request bodies one process reads at once; more wait for a turn within their BODY_TIMEOUT (else 503, "
            "Retry-After). Bounds the memory of bodies being read to about this times MAX_BODY_BYTES."
        ),
    )
    UNGOVERNED: Literal["defer", "approve"] = Field(
        "defer", description="Decision for a target no policy governs (fail closed by default)."
    )
    RETRY_DELAY: str = Field("5m", description="When a fail-closed deferral may be retried (duration).")
    HOST: str = Field("127.0.0.1", description="Address to listen on.")
    PORT: int = Field(8080, ge=1, le=65535, description="Port to listen on.")

    WORKERS: int = Field(
        1,
        ge=1,
        le=64,
        description=(
            "Worker processes `serve` runs (one per core pays off; PostgreSQL only: SQLite serves one process)."
        ),
    )
    THREADS: int = Field(
        4,
        ge=1,
        le=256,
        description=(
            "Threads per process that run blocking work (database round trips). Few beat many under the GIL "
            "(measured in docs/benchmarks.md); raise it when the database is far away."
        ),
    )
    WEBHOOK_CONCURRENCY: int = Field(
        2,
        ge=1,
        le=64,
        description=(
            "Webhook deliveries decided at once per process; more wait their turn. A burst of 300 pushes then "
            "does not take every thread from the hooks' gate calls (docs/benchmarks.md)."
        ),
    )
    RELOAD_INTERVAL: float = Field(
        2.0, gt=0, description="Seconds between checks of the policy, calendar and tokens files for changes."
    )
    DELIVERY_RETENTION: str = Field(
        "7d", description="How long webhook deliveries are kept for redelivery dedupe (duration)."
    )
    REVIEW_INTERVAL: float = Field(
        30.0,
        gt=0,
        description=(
            "Seconds between re-checks of a GitHub deployment review that waits for its release (it is also "
            "woken at once by each new decision of that release)."
        ),
    )
    FACT_TIMEOUT: str = Field(
        "10s",
        description=(
            "How long each fact source (Git, cluster, registry) may take before the decision defers with "
            "facts_unavailable (duration; fail closed). Facts are gathered before any database lock."
        ),
    )
    GIT_CACHE_DIR: Path = Field(
        Path("./.gatekeeper/git"),
        description="Directory of the bare Git mirrors the drift check reads manifests from (one per repository).",
    )
    GIT_TOKEN: SecretStr | None = Field(
        None, description="Token for https Git repositories (sent as the password; the user is x-access-token)."
    )
    GIT_SSH_KEY_FILE: Path | None = Field(None, description="Private key file for ssh:// Git repositories.")
    KUBECONFIG: Path | None = Field(
        None,
        description=(
            "kubeconfig file of the clusters drift is read from (a policy's spec.source.cluster names a context). "
            "Unset: in-cluster configuration, then the standard kubeconfig (~/.kube/config)."
        ),
    )
    ARGOCD_NAMESPACE: str = Field(
        "argocd",
        description="The Argo CD control plane's namespace: where the Application of argocd:<name> lives "
        "(argocd:<namespace>/<name> names one elsewhere, asked for with appNamespace).",
    )
    FLUX_GATE: bool = Field(
        False,
        description=(
            "Gate Flux (it has no pre-sync hook): suspend a governed Kustomization or HelmRelease (in the current "
            "context of KUBECONFIG) while its release is deferred, resume it with a reconcile request when approved."
        ),
    )
    FLUX_WINDOW_INTERVAL: float = Field(
        10.0,
        ge=0,
        description=(
            "Seconds between the looks, with FLUX_GATE, at every governed Flux target's gate for a window or freeze "
            "that began or ended with no new release (one query over the Flux releases: 35 ms at 200,000 releases)."
        ),
    )
    REGISTRY_AUTH_FILE: Path | None = Field(
        None,
        description=(
            "A Docker config.json whose `auths` give registry credentials for the provenance check (used to "
            "answer a registry's Basic or Bearer-token challenge). Default: anonymous."
        ),
    )
    INSECURE_REGISTRIES: str = Field(
        "",
        description=(
            "Comma-separated host:port of registries spoken to over plain HTTP (loopback ones always are, as "
            "Docker does); every other registry is spoken to over HTTPS."
        ),
    )
    SIGSTORE_TRUSTED_ROOT: Path | None = Field(
        None,
        description=(
            "Sigstore trusted root JSON (Fulcio CAs, Rekor and CT log keys) for keyless signatures of the "
            "provenance check, read once at start-up (shipped with the deployment: nothing is fetched, no TUF); a "
            "file that does not load fails start-up. Unset: a policy with signatures.identities refuses every image "
            "(sigstore_trusted_root_missing)."
        ),
    )
    SCHEDULER_INTERVAL: float = Field(
        1.0,
        gt=0,
        description=(
            "Seconds between the scheduler's passes over due deferrals and due actions (a commit in the same "
            "process wakes it at once; other replicas see new actions within this interval)."
        ),
    )
    ACTION_LEASE: str = Field(
        "60s",
        description=(
            "How long a replica's claim on an action lasts (duration): a replica that dies mid-action loses it "
            "then, and another replica carries the action out (a harmless repeat: actions are idempotent)."
        ),
    )
    ACTION_RETRY: str = Field("5s", description="Delay before an action's first retry; doubles per attempt.")
    ACTION_RETRY_MAX: str = Field("10m", description="Longest delay between two attempts of an action.")
    ACTION_MAX_ATTEMPTS: int = Field(
        20, ge=1, description="Attempts after which a failing action is marked failed (shown on /readyz)."
    )
    NOTIFICATIONS_FILE: Path | None = Field(
        None,
        description=(
            "YAML list of notification endpoints: {name, kind: webhook | slack | teams, url, secret (webhook: the "
            "HMAC key), events, targets} (docs/notifications.md). Read at start-up; a bad file fails it. Unset: "
            "nobody is notified. URLs and secrets are never logged or stored in the outbox."
        ),
    )
    NOTIFICATION_TIMEOUT: str = Field(
        "5s",
        description=(
            "Timeout of one notification attempt (duration; connect and each read). A hanging endpoint holds one "
            "outbox worker this long, never a gate answer; failures are retried with ACTION_RETRY backoff."
        ),
    )
    UI_TIMEZONE: str = Field("Europe/Berlin", description="Time zone the release-manager page shows local times in.")
    LOG_FORMAT: Literal["text", "json"] = Field("text", description="Log format: text locally, json in production.")
    AUDIT_KEY: SecretStr | None = Field(
        None,
        description=(
            "HMAC-SHA256 key of the audit chain (use 32 random bytes or more; keep it out of the database's reach). "
            "Unset: plain SHA-256 and a start-up warning, and a database writer can rewrite the chain unnoticed "
            "(docs/audit.md). Changing it makes earlier records fail `audit verify` under the new key."
        ),
    )

    @model_validator(mode="after")
    def _argocd_api(self) -> Settings:
        """Half an Argo CD API is none: say so at start-up, not by never syncing a deferred release."""
        names = ("ARGOCD_SERVER", "ARGOCD_API_TOKEN")
        given = [name for name, value in zip(names, (self.ARGOCD_SERVER, self.ARGOCD_API_TOKEN), strict=True) if value]
        if len(given) == 1:
            missing = next(name for name in names if name not in given)
            raise ValueError(f"{given[0]} is set and {missing} is not: Argo CD sync and rollback need both")
        return self

    @field_validator("AUDIT_KEY")
    @classmethod
    def _audit_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("must not be empty (leave it unset for no key)")
        return value

    @field_validator(
        "RETRY_DELAY",
        "DELIVERY_RETENTION",
        "FACT_TIMEOUT",
        "ACTION_LEASE",
        "ACTION_RETRY",
        "ACTION_RETRY_MAX",
        "BODY_TIMEOUT",
        "CALENDAR_FETCH_TIMEOUT",
        "NOTIFICATION_TIMEOUT",
    )
    @classmethod
    def _duration(cls, value: str) -> str:
        try:
            Duration.parse(value)
        except InvalidDurationError as exc:
            raise ValueError(str(exc)) from None
        return value

    @property
    def audit_key(self) -> bytes | None:
        """The audit chain's HMAC key as bytes (UTF-8), None when unset."""
        return self.AUDIT_KEY.get_secret_value().encode() if self.AUDIT_KEY is not None else None

    @property
    def retry_delay_seconds(self) -> int:
        return _seconds(self.RETRY_DELAY)

    @property
    def body_timeout_seconds(self) -> int:
        return _seconds(self.BODY_TIMEOUT)

    @property
    def delivery_retention_seconds(self) -> int:
        return _seconds(self.DELIVERY_RETENTION)

    @property
    def calendar_fetch_timeout_seconds(self) -> float:
        """CALENDAR_FETCH_TIMEOUT in seconds."""
        return float(_seconds(self.CALENDAR_FETCH_TIMEOUT))

    def seconds(self, name: str) -> int:
        """A duration setting in seconds (``settings.seconds("ACTION_LEASE")``)."""
        return _seconds(str(getattr(self, name)))


def _seconds(text: str) -> int:
    duration = Duration.parse(text)
    return duration.days * 86_400 + duration.seconds
