"""The dashboard's and the alerts' settings (environment and ``.env``, like kwx's own).

Kept apart from :class:`kwx.config.Settings` so monitoring knobs do not crowd the trading
ones. The webhook URL is a secret (Slack and Telegram put their token in it): a
``SecretStr`` that no log line, alert row or payload ever shows.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

WebhookFormat = Literal["json", "slack", "telegram"]


class MonitorSettings(BaseSettings):
    """``ALERT_*`` and ``DASHBOARD_TOKEN`` variables."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    alert_webhook_url: SecretStr | None = None
    alert_webhook_format: WebhookFormat = "json"
    alert_telegram_chat_id: str | None = None
    alert_stale_minutes: float = Field(default=15.0, gt=0)
    alert_resync_minutes: float = Field(default=2.0, gt=0)
    alert_pending_minutes: float = Field(default=10.0, gt=0)
    alert_ece_max: float = Field(default=0.10, gt=0, le=1)
    alert_settlement_days: int = Field(default=14, ge=1)
    dashboard_token: SecretStr | None = None

    @field_validator("alert_webhook_url", "dashboard_token", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value
