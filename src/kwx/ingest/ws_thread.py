"""Run the WebSocket recorder beside the polling jobs of `kwx ingest run`.

The recorder is asyncio; the polling jobs are plain blocking code. The recorder gets its own
event loop in a daemon thread, started with the open markets' tickers and stopped cleanly
(pending rows flushed) when the ingest ends. A failure of the stream (a refused key, say) is
reported and leaves the polling jobs running: REST polling is the fallback.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence

from kwx.config import Settings
from kwx.ingest.ws_recorder import Recorder
from kwx.sources.kalshi_ws import KalshiWebSocket

log = logging.getLogger(__name__)


class RecorderThread:
    def __init__(self, settings: Settings, tickers: Sequence[str]) -> None:
        self.settings = settings
        self.tickers = list(tickers)
        self.error: BaseException | None = None
        self.rows = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="kwx-ws-recorder", daemon=True)

    def start(self) -> RecorderThread:
        self._thread.start()
        self._ready.wait(timeout=10)
        return self

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # reported to the caller, never raised in this thread
            self.error = exc
            log.error("WebSocket recorder stopped: %s", exc)
        finally:
            self._ready.set()

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        async with Recorder(self.settings) as recorder:
            client = KalshiWebSocket.from_settings(
                self.settings, self.tickers, on_event=recorder.on_event
            )
            try:
                await client.run(self._stop)
            finally:
                await recorder.flush()
                stats = recorder.stats
                self.rows = stats.snapshot_rows + stats.delta_rows + stats.trade_rows

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()
