"""Every parameter of the strategy in one validated object, recorded with each run.

Defaults are deliberately plain (round numbers a trader would pick before seeing a backtest),
so a run's figures are not a fit to the days it reports on.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["ExecutionConfig", "RiskConfig", "SignalConfig", "StrategyConfig"]


class SignalConfig(BaseModel):
    """S_j(t) = α·RAS_z + β·velocity_z + γ·flow percentile + δ·hazard score + ε·(p_cal − nbr)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    alpha: float = 0.25
    beta: float = 0.25
    gamma: float = 0.25
    delta: float = 0.5
    epsilon: float = 0.5
    window_min: int = Field(default=360, ge=10, description="rolling window of the z-scores")
    min_obs: int = Field(default=30, ge=2, description="values needed before a z-score exists")
    z_clip: float = Field(default=4.0, gt=0)
    flow_window_min: int = Field(default=20, ge=1, description="signed taker flow window")
    flow_lookback_days: int = Field(
        default=14, ge=1, description="days of flow the percentile is taken against"
    )
    fallback_w_wx: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="weight of p_wx in the linear pool used where p_fused_norm is missing",
    )
    quote_max_age_min: int = Field(
        default=120,
        ge=1,
        description="a quote rebuilt from trades older than this is treated as unknown",
    )


class ExecutionConfig(BaseModel):
    """Maker first; taker only on a bigger edge. Edges are dollars per contract after fees."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    maker_edge: Decimal = Decimal("0.04")
    taker_edge: Decimal = Decimal("0.08")
    exit_edge: Decimal = Decimal("0.04")
    taker_slippage: Decimal = Decimal("0.01")
    # 0.25 ≈ the median |S| where every other entry gate passes, chicago Jan–Aug 2024 (fixed
    # before looking at the Sep–Dec results reported).
    signal_threshold: float = Field(default=0.25, ge=0.0, description="|S| must reach this")
    require_signal_agreement: bool = Field(
        default=False, description="also require sign(S) to agree with the trade's direction"
    )
    p_min: float = 0.05
    p_max: float = 0.95
    min_volume_20m: float = Field(default=1.0, ge=0.0, description="contracts in 20 minutes")
    max_spread: Decimal = Decimal("0.04")
    order_count: Decimal = Decimal(10)
    order_ttl_min: int = Field(default=10, ge=1, description="cancel a limit older than this")
    improve: Decimal = Decimal("0.01")
    edge_gate: bool = Field(
        default=True,
        description="enter only in (city, hour, price) cells where p_fused's walk-forward gain "
        "over p_mkt has a 95% interval above 0 (model.edge_cells); none measured: no entries",
    )

    @model_validator(mode="after")
    def _thresholds(self) -> ExecutionConfig:
        if self.taker_edge < self.maker_edge:
            raise ValueError("taker_edge must be at least maker_edge (maker first)")
        if not 0.0 <= self.p_min < self.p_max <= 1.0:
            raise ValueError("need 0 ≤ p_min < p_max ≤ 1")
        return self


class RiskConfig(BaseModel):
    """Limits checked by the engine before any order leaves it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_position: Decimal = Field(default=Decimal(50), description="contracts per bracket")
    max_daily_loss_city: Decimal = Decimal(100)
    max_daily_loss_global: Decimal = Decimal(300)
    max_gross_exposure: Decimal = Field(
        default=Decimal(500), description="premium at risk: open cost + resting buys"
    )
    time_stop_min: int = Field(
        default=30, ge=0, description="cancel resting this long before close"
    )
    exit_at_time_stop: bool = False
    no_new_orders_min: int = Field(default=45, ge=0, description="no new orders this near close")


class StrategyConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    signals: SignalConfig = SignalConfig()
    execution: ExecutionConfig = ExecutionConfig()
    risk: RiskConfig = RiskConfig()

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
