"""Which faults the simulator injects, parsed from ``--faults`` (``name[=value],…``).

* ``disconnect[=S]`` (S = 20): every S wall seconds, every WebSocket connection is aborted
  (no close frame).
* ``gap[=p]`` (0.02 per book delta): the delta's ``seq`` is spent but the frame is never sent.
* ``dup[=p]`` (0.02 per book delta and per fill): the same frame twice, with the same ``seq``.
* ``reorder[=p]`` (0.02 per book delta): the delta is swapped with the next one.
* ``429[=p]`` (0.02 per REST request): a burst of three ``429 too many requests``.
* ``5xx[=p]`` (0.01 per REST request): ``503`` before the request is processed.
* ``slow[=p]`` (0.01 per REST request): the answer comes ``slow_s`` (1.5 s) late, after the
  request was processed (a client that times out must reconcile).
* ``maintenance``: Kalshi's Thursday 03:00–05:00 ET pause: new and amended orders refused,
  cancels allowed, WebSocket connections dropped when it starts, ``/exchange/status`` says so.

Random faults draw from one seeded generator, so a run is repeatable.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, fields
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = ["FAULT_NAMES", "FaultConfig", "maintenance_windows"]

_DEFAULTS: dict[str, float] = {
    "disconnect": 20.0,
    "gap": 0.02,
    "dup": 0.02,
    "reorder": 0.02,
    "429": 0.02,
    "5xx": 0.01,
    "slow": 0.01,
    "maintenance": 1.0,
}
FAULT_NAMES = tuple(_DEFAULTS)
_FIELD = {"429": "rest_429", "5xx": "rest_5xx", "slow": "rest_slow"}
ET = ZoneInfo("America/New_York")
MAINTENANCE_START = time(3, 0)
MAINTENANCE_END = time(5, 0)


@dataclass
class FaultConfig:
    disconnect: float = 0.0  # wall seconds between forced disconnects; 0 = never
    gap: float = 0.0
    dup: float = 0.0
    reorder: float = 0.0
    rest_429: float = 0.0
    rest_5xx: float = 0.0
    rest_slow: float = 0.0
    maintenance: bool = False
    burst_429: int = 3
    slow_s: float = 1.5
    seed: int = 7
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.rng.seed(self.seed)

    @classmethod
    def parse(cls, text: str | None, *, seed: int = 7) -> FaultConfig:
        """``"gap=0.05,dup,429=0.1,maintenance"``; empty or None = no faults."""
        config = cls(seed=seed)
        for part in (text or "").split(","):
            part = part.strip()
            if not part:
                continue
            name, _, raw = part.partition("=")
            name = name.strip().lower()
            if name not in _DEFAULTS:
                raise ValueError(
                    f"--faults: unknown fault {name!r}; known: {', '.join(FAULT_NAMES)}"
                )
            try:
                value = float(raw) if raw.strip() else _DEFAULTS[name]
            except ValueError:
                raise ValueError(f"--faults: {name}={raw!r} is not a number") from None
            if value < 0 or (name not in ("disconnect", "maintenance") and value > 1):
                raise ValueError(
                    f"--faults: {name}={raw} out of range (a probability in [0, 1])"
                    if name != "disconnect"
                    else f"--faults: disconnect={raw} must be >= 0 seconds"
                )
            if name == "maintenance":
                config.maintenance = value > 0
            else:
                setattr(config, _FIELD.get(name, name), value)
        return config

    def roll(self, probability: float) -> bool:
        return probability > 0 and self.rng.random() < probability

    def describe(self) -> str:
        active = []
        for f in fields(self):
            if f.name in ("burst_429", "slow_s", "seed", "rng"):
                continue
            value = getattr(self, f.name)
            if value:
                active.append(f.name if value is True else f"{f.name}={value:g}")
        return ", ".join(active) if active else "none"


def maintenance_windows(first: datetime, last: datetime) -> list[tuple[datetime, datetime]]:
    """Thursday 03:00–05:00 America/New_York windows overlapping [first, last] (aware UTC)."""
    out = []
    day: date = first.astimezone(ET).date() - timedelta(days=1)
    end_day = last.astimezone(ET).date() + timedelta(days=1)
    while day <= end_day:
        if day.weekday() == 3:  # Thursday
            start = datetime.combine(day, MAINTENANCE_START, tzinfo=ET)
            stop = datetime.combine(day, MAINTENANCE_END, tzinfo=ET)
            if stop >= first and start <= last:
                out.append((start, stop))
        day += timedelta(days=1)
    return out
