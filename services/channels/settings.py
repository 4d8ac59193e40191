"""Settings of the SMS and USSD adapters, from the environment (names in the README).

Callbacks are authenticated by a shared secret (the `key` query parameter of the callback URL
configured at the aggregator or gateway, or the `X-Callback-Key` header) and/or an IP allow-list
(comma-separated addresses or CIDR networks); at least one is required. Locally, secrets that are
not given are generated once into `DATA_DIR/channels-secrets.json` (as services/common/settings.py
does for the others).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SECRETS_FILE = "channels-secrets.json"


class ChannelSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    data_dir: Path = Path(".data")

    # USSD (*119#): Africa's Talking-style callbacks at POST /ussd.
    ussd_port: int = 8090
    ussd_secret: str = ""
    ussd_allowed_ips: str = ""
    # How long a callback waits for the dialog's answer before it says "busy, dial again".
    ussd_reply_seconds: float = Field(default=4.5, gt=0, le=20)
    # A later answer is shown on the next dial within this long (aggregators end a session
    # after about 180 s).
    ussd_resume_seconds: float = Field(default=600, gt=0)

    # SMS through a Jasmin gateway (jasmin_url: its HTTP API, e.g. http://jasmin:1401).
    sms_port: int = 8091
    sms_secret: str = ""
    sms_allowed_ips: str = ""
    jasmin_url: str = "http://127.0.0.1:1401"
    jasmin_username: str = "vaksin"
    jasmin_password: str = ""
    sms_sender: str = "PEDULICOVID"
    # Where the gateway posts delivery reports: our public base URL (the /sms/dlr path and the
    # key are added); empty: ask for no reports.
    sms_callback_base: str = ""
    # Per number: seconds between two SMS parts, and parts a day.
    sms_interval: float = Field(default=1.0, ge=0)
    sms_daily_parts: int = Field(default=60, ge=1)
    sms_max_attempts: int = Field(default=8, ge=1)

    def resolved(self) -> ChannelSettings:
        missing = [
            k for k in ("ussd_secret", "sms_secret", "jasmin_password") if not getattr(self, k)
        ]
        if not missing:
            return self
        path = self.data_dir / SECRETS_FILE
        stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        if any(k not in stored for k in missing):
            stored |= {k: secrets.token_urlsafe(24) for k in missing if k not in stored}
            self.data_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(stored, indent=2))
            tmp.chmod(0o600)
            tmp.replace(path)
        return self.model_copy(update={k: stored[k] for k in missing})


def load_channel_settings(data_dir: Path) -> ChannelSettings:
    return ChannelSettings(data_dir=data_dir).resolved()
