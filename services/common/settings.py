"""Settings shared by every service, read from the environment (names as in DESIGN.md).

Local defaults work out of the box: when `NATS_URL` / `DATABASE_URL` are unset the local runner
(`vaksin up`) starts embedded servers and records their URLs in `DATA_DIR/runtime.json`, and secrets
that are not given are generated once into `DATA_DIR/secrets.json`, so nothing secret is hard-coded.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

RUNTIME_FILE = "runtime.json"
SECRETS_FILE = "secrets.json"

# Secrets generated locally when not given in the environment (never in production: see README).
_GENERATED_SECRETS = (
    "whatsapp_app_secret",
    "whatsapp_verify_token",
    "nik_pepper",
    "operator_token",
    # 32 random bytes in base64url: exactly an Ed25519 seed (see services/ticketing/token.py).
    "ticket_signing_key",
)


class WhatsAppTemplate(BaseModel):
    """An approved WhatsApp template: what the notifier sends for one notification type when the
    24-hour window is closed. `languages` maps the user's language to Meta's language code."""

    name: str = Field(pattern=r"^[a-z0-9_]{1,512}$")
    params: int = Field(default=0, ge=0, le=20, description="number of body parameters")
    languages: dict[str, str] = Field(default_factory=lambda: {"id": "id", "en": "en"})


def _local_templates() -> dict[str, WhatsAppTemplate]:
    """Local defaults (the fake Graph API approves these): notification type -> template."""
    return {
        kind: WhatsAppTemplate(name=kind, params=params)
        for kind, params in (
            ("rescreen_reminder", 1),  # re-screen date
            ("appointment_reminder", 3),  # facility, date, time
            ("intake_decision", 1),  # approved / rejected, in words
            ("ticket_ready", 1),  # ticket code
            ("conversation_resume", 0),  # "we have a message for you: reply to continue"
        )
    }


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    # One URL, or the nodes of a cluster separated by commas (`nats_servers`).
    nats_url: str | None = None
    database_url: str | None = None
    data_dir: Path = Path(".data")
    # Copies JetStream keeps of every stream (3 on a production cluster); unset: 1, or as many as
    # `vaksin up`'s cluster has nodes, up to 3 (`stream_replicas`).
    nats_stream_replicas: int | None = Field(default=None, ge=1, le=5)
    # `vaksin up` only: nats-servers to run as one cluster, and processes to run of each service.
    vaksin_nats_nodes: int = Field(default=1, ge=1, le=5)
    vaksin_replicas: int = Field(default=1, ge=1, le=8)

    whatsapp_api_base: str = "https://graph.facebook.com/v25.0"
    whatsapp_phone_number_id: str = "100000000000001"
    whatsapp_access_token: str = ""
    whatsapp_app_secret: str = ""
    whatsapp_verify_token: str = ""

    ingress_port: int = 8080
    # Port of the /healthz, /readyz and /metrics server of a non-HTTP service.
    health_port: int = 0
    # Comma-separated /readyz URLs that the ingress's /readyz also requires (set by `vaksin up`).
    readyz_depends: str = ""

    ticket_signing_key: str = ""
    vaccine_video_url: str = "https://example.org/vaksin/cara-kerja-vaksin.mp4"
    nik_pepper: str = ""
    operator_token: str = ""

    log_level: str = "INFO"
    log_json: bool | None = None  # None: JSON unless stderr is a terminal

    # Dialog and notifier partitions: one user's messages always land in the same partition,
    # which is consumed by one handler at a time, so a user's turns are handled in order.
    dialog_partitions: int = Field(default=8, ge=1, le=64)
    notifier_partitions: int = Field(default=8, ge=1, le=64)

    # Notifier: Meta's throughput per business number (80 messages/s by default, up to 1,000;
    # 0 lifts the limit, for benchmarks only), shared by every replica; the per-user pair limit
    # (about one message per 6 s, with bursts); the templates per notification type, as JSON
    # ({"<type>": {"name": ..., "params": N, "languages": {"id": "id", "en": "en"}}}); and how
    # many Graph calls one replica keeps in flight.
    whatsapp_mps: float = Field(default=80, ge=0, le=10_000)
    whatsapp_pair_interval: float = Field(default=6.0, gt=0, le=600)
    whatsapp_pair_burst: int = Field(default=20, ge=1, le=100)
    whatsapp_templates: dict[str, WhatsAppTemplate] = Field(default_factory=_local_templates)
    notifier_max_in_flight: int = Field(default=128, ge=1, le=1024)
    # Days a finished outbound message is kept (then purged). At least 8: Meta retries a status
    # webhook for up to 7 days, and a status for a wamid we no longer know could be taken for
    # the user's attempt in flight; NOTIFIER keeps commands 7 days, and a redelivered command
    # must still find its row so as not to be sent twice.
    notifier_retention_days: int = Field(default=30, ge=8, le=3650)

    lockout_max_failures: int = 5
    lockout_hours: int = 24

    # Scheduler: how long an offered seat is held for the user; when the day-before reminder goes
    # out (Jakarta time); dose-2 interval per vaccine as [min, max] days after dose 1 (JSON, e.g.
    # {"CoronaVac": [14, 28]}); how often an automatic booking that found no seat tries again; how
    # far ahead a booking of a cancelled session is moved; how often its background jobs run.
    scheduler_hold_minutes: float = Field(default=10, gt=0, le=120)
    scheduler_reminder_time: dt.time = dt.time(9, 0)
    scheduler_dose_intervals: dict[str, tuple[int, int]] = Field(
        default_factory=lambda: {"CoronaVac": (14, 28)}
    )
    scheduler_retry_hours: float = Field(default=24, gt=0)
    scheduler_rebook_days: int = Field(default=14, ge=1, le=90)
    scheduler_job_seconds: float = Field(default=30, gt=0)

    # The operators' console: minutes a session may stay idle; whether it runs behind a proxy
    # (the Ingress) whose X-Forwarded-For / X-Forwarded-Proto it may trust.
    console_idle_minutes: float = Field(default=30, gt=0, le=24 * 60)
    console_behind_proxy: bool = False

    @property
    def nats_servers(self) -> list[str]:
        """NATS_URL as the clients take it: a list of servers, to any of which they reconnect."""
        return nats_servers(self.nats_url)

    @property
    def stream_replicas(self) -> int:
        return self.nats_stream_replicas or min(3, self.vaksin_nats_nodes)

    def runtime(self) -> dict[str, Any]:
        path = self.data_dir / RUNTIME_FILE
        if path.exists():
            return json.loads(path.read_text())
        return {}

    def resolved(self) -> Settings:
        """Fill URLs from the running local system and secrets from `DATA_DIR` where not set."""
        updates: dict[str, object] = {}
        runtime = self.runtime()
        for key in ("nats_url", "database_url"):
            if not getattr(self, key) and runtime.get(key):
                updates[key] = runtime[key]
        if not os.environ.get("WHATSAPP_API_BASE") and runtime.get("whatsapp_api_base"):
            updates["whatsapp_api_base"] = runtime["whatsapp_api_base"]
        missing = [key for key in _GENERATED_SECRETS if not getattr(self, key)]
        if missing:  # production gives them all: then nothing is read or written here
            local = load_local_secrets(self.data_dir)
            updates.update({key: local[key] for key in missing})
        return self.model_copy(update=updates)

    def require_urls(self) -> Settings:
        if not self.nats_url or not self.database_url:
            raise SystemExit(
                "No running system found: start it with `vaksin up` (or `make up`), "
                f"or set NATS_URL and DATABASE_URL. Looked in {self.data_dir / RUNTIME_FILE}."
            )
        return self


def nats_servers(url: str | None) -> list[str]:
    """`nats://a:4222,nats://b:4222` as a list (nats-py takes one URL or a list, not both in one
    string); nothing given: the local default."""
    servers = [part.strip() for part in (url or "").split(",") if part.strip()]
    return servers or ["nats://127.0.0.1:4222"]


def load_local_secrets(data_dir: Path) -> dict[str, str]:
    """Secrets for local use, generated once and kept (mode 0600) so restarts keep working."""
    path = data_dir / SECRETS_FILE
    stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    missing = [k for k in _GENERATED_SECRETS if k not in stored]
    if missing:
        for key in missing:
            stored[key] = secrets.token_urlsafe(32)
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(stored, indent=2))
        tmp.chmod(0o600)
        tmp.replace(path)
    return stored


def load_settings() -> Settings:
    return Settings().resolved()
