"""p_wx for the minute at hand, when the store does not have it yet: the weather model live.

`kwx weather backfill` computes every minute of a finished day. A live day has only its
minutes so far, and nobody else writes them: :class:`LiveWeather` runs the same model
(:func:`kwx.weather.run_day.load_day` then :func:`kwx.weather.mc.run_day`) for one minute —
``times=[t]``, the baseline row of t, the observations the store holds (the engine reads only
those stamped by t) — and writes the rows with the backfill's own writer. The residual bank
is drawn from the same per-city-day seed whatever minutes are asked for, so a live minute
equals the backfill's value for that minute (a test checks it).

By default it runs on a worker thread: the loop asks for minute t when pmf.minute lacks it,
goes on without it (the panel has NaN there, as a backtest would), and the row is read at the
next minute. A model that cannot run (no fitted parameters, no observations) is reported once
and not asked again.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass

import numpy as np

from kwx.backtest.loader import EventMeta
from kwx.config import Settings
from kwx.registry import City
from kwx.store.engine import connect
from kwx.store.writers import PMF_WX
from kwx.weather.mc import run_day
from kwx.weather.run_day import day_rng, load_day, pmf_frame

__all__ = ["LiveWeather", "WeatherStats"]

log = logging.getLogger(__name__)


@dataclass
class WeatherStats:
    requested: int = 0
    computed: int = 0
    failed: str = ""


class LiveWeather:
    """One city's weather model, one minute at a time (see the module notes)."""

    def __init__(
        self,
        settings: Settings,
        city: City,
        mc_version: str,
        *,
        paths: int,
        seed: int = 0,
        params_version: str = "v1",
        forecast_source: str = "vc",
        background: bool = True,
    ) -> None:
        self.settings = settings
        self.city = city
        self.mc_version = mc_version
        self.paths = paths
        self.seed = seed
        self.params_version = params_version
        self.forecast_source = forecast_source
        self.background = background
        self.stats = WeatherStats()
        self._asked: set[tuple[str, int]] = set()
        self._queue: queue.Queue[tuple[EventMeta, int] | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def ensure(self, event: EventMeta, t: int) -> None:
        """Make sure minute ``t`` of ``event``'s climate day gets computed (once)."""
        if self.stats.failed or (event.event_ticker, t) in self._asked:
            return
        self._asked.add((event.event_ticker, t))
        self.stats.requested += 1
        if not self.background:
            self.compute(event, t)
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="kwx-live-wx", daemon=True)
            self._thread.start()
        self._queue.put((event, t))

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if not self.stats.failed:
                self.compute(*item)

    def compute(self, event: EventMeta, t: int) -> int:
        """Run the model for minute ``t`` and store its rows; 0 when it cannot run."""
        try:
            with connect(self.settings) as conn:
                inputs = load_day(
                    conn,
                    self.city,
                    event.climate_date,
                    forecast_source=self.forecast_source,
                    version=self.params_version,
                )
                result = run_day(
                    inputs.baseline[[t]],
                    inputs.obs,
                    inputs.params,
                    inputs.measurement,
                    inputs.brackets,
                    paths=self.paths,
                    rng=day_rng(self.seed, event.climate_date, self.city),
                    times=[t],
                    row_shift=inputs.shift_at(np.array([t])),
                )
                frame = pmf_frame(inputs, result, self.mc_version)
                with conn.transaction(), conn.cursor() as cur:
                    written = PMF_WX.write(cur, frame)
        except (ValueError, LookupError) as exc:
            self.stats.failed = f"{self.city.key}: the weather model cannot run live: {exc}"
            log.warning("%s", self.stats.failed)
            return 0
        self.stats.computed += 1
        return written
