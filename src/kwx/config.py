"""Settings read from the environment and `.env`.

Secrets are `SecretStr` so that no repr, log line or traceback shows them; code that needs the
value calls `.get_secret_value()` at the last moment.
"""

from __future__ import annotations

import contextlib
import functools
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import platformdirs
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kwx.domain.secrets import register_secret


class KalshiEnv(StrEnum):
    PROD = "prod"
    DEMO = "demo"


class TradeMode(StrEnum):
    PAPER = "paper"
    LIVE = "live"


KALSHI_REST_URLS = {
    KalshiEnv.PROD: "https://external-api.kalshi.com/trade-api/v2",
    KalshiEnv.DEMO: "https://external-api.demo.kalshi.co/trade-api/v2",
}
KALSHI_WS_URLS = {
    KalshiEnv.PROD: "wss://external-api-ws.kalshi.com/trade-api/ws/v2",
    KalshiEnv.DEMO: "wss://external-api-ws.demo.kalshi.co/trade-api/ws/v2",
}


def default_data_dir() -> Path:
    """Where kwx keeps its embedded database and caches when nothing else is configured."""
    return Path(platformdirs.user_data_dir("kwx", appauthor=False))


class Settings(BaseSettings):
    """Every knob kwx reads from outside. Unknown KWX_* variables are ignored, not fatal."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        populate_by_name=True,
    )

    kwx_database_url: SecretStr | None = Field(
        default=None,
        description="PostgreSQL URL (postgresql://user:pass@host/db). Unset: embedded server.",
    )
    kwx_data_dir: Path = Field(default_factory=default_data_dir)

    vc_api_key: SecretStr | None = None
    kalshi_api_key_id: SecretStr | None = None
    kalshi_private_key_path: Path | None = None
    kalshi_env: KalshiEnv = KalshiEnv.PROD
    trade_mode: TradeMode = TradeMode.PAPER
    nws_user_agent: str = "kwx (contact: set NWS_USER_AGENT)"
    mc_paths: int = Field(default=4000, ge=100, le=1_000_000)

    # Fees (Kalshi schedule, §9 of the reference): the series' fee_type is read at run time.
    fee_taker_rate: float = Field(default=0.07, ge=0.0, le=1.0)
    fee_maker_rate: float = Field(default=0.0175, ge=0.0, le=1.0)

    # Base URLs: every source is configurable so tests and simulators can point at loopback.
    # Unset Kalshi URLs follow KALSHI_ENV (see kalshi_rest_url / kalshi_ws_url).
    kalshi_rest_base_url: str | None = None
    kalshi_ws_url_override: str | None = Field(default=None, alias="KALSHI_WS_URL")
    iem_base_url: str = "https://mesonet.agron.iastate.edu"
    # IEM asks scripts for at most one request per second per address; raise it only for a
    # mirror or a local replay server.
    iem_requests_per_s: float = Field(default=1.0, gt=0)
    nws_base_url: str = "https://api.weather.gov"
    vc_base_url: str = "https://weather.visualcrossing.com/VisualCrossingWebServices/rest/services"
    http_timeout_s: float = Field(default=20.0, gt=0)

    # Import: naive timestamps in top-of-book logs are in this zone (checked against the
    # 10:00 ET market open: the first snapshot of each event day lands at 07:00 Pacific).
    top_of_book_timezone: str = "America/Los_Angeles"

    @field_validator("kwx_database_url", "vc_api_key", "kalshi_api_key_id", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        """An empty variable in .env means "not set", not "the empty secret"."""
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("trade_mode", "kalshi_env", mode="before")
    @classmethod
    def _any_case(cls, value: object) -> object:
        """TRADE_MODE=LIVE means live: the choice is a word, not a case (an unknown word
        still fails, naming the setting and its values; see kwx.commands.errors)."""
        return value.strip().lower() if isinstance(value, str) else value

    def model_post_init(self, context: Any, /) -> None:
        """Register the secrets' values for redaction (kwx.domain.secrets): a server echoing
        them back in an error must not put them into a log line or a stored body."""
        del context
        for secret in (self.vc_api_key, self.kalshi_api_key_id):
            if secret is not None:
                register_secret(secret.get_secret_value())
        if self.kwx_database_url is not None:
            with contextlib.suppress(ValueError):  # an odd URL is the driver's to refuse
                register_secret(urlsplit(self.kwx_database_url.get_secret_value()).password)

    @property
    def kalshi_rest_url(self) -> str:
        """REST root including /trade-api/v2 (the signed path starts there)."""
        if self.kalshi_rest_base_url:
            return self.kalshi_rest_base_url.rstrip("/")
        return KALSHI_REST_URLS[self.kalshi_env]

    @property
    def kalshi_ws_url(self) -> str:
        return self.kalshi_ws_url_override or KALSHI_WS_URLS[self.kalshi_env]

    @property
    def pgdata_dir(self) -> Path:
        return self.kwx_data_dir / "pgdata"

    def describe(self) -> dict[str, str]:
        """A printable summary with every secret masked."""
        out: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                out[name] = "**********"
            elif value is None:
                out[name] = "(unset)"
            else:
                out[name] = str(value)
        return out


@functools.cache
def get_settings() -> Settings:
    return Settings()
