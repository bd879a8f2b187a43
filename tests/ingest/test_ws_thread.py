"""`kwx ingest run`'s WebSocket recorder thread against the loopback Kalshi WS server."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest

from kwx.config import Settings
from kwx.ingest.ws_thread import RecorderThread
from kwx.sim.kalshi_ws_server import KalshiWsServer
from kwx.store.engine import connect

TICKER = "KXHIGHMIA-26SEP15-B88.5"


class ServerThread:
    """The async server on its own loop, so the recorder's loop is really another thread."""

    def __init__(self) -> None:
        self.server: KalshiWsServer | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with KalshiWsServer() as server:
            self.server = server
            server.set_book(
                TICKER, yes=[(Decimal("0.40"), Decimal("10"))], no=[(Decimal("0.55"), Decimal("7"))]
            )
            self._ready.set()
            await self._stop.wait()

    def call(self, fn: object) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(fn)  # type: ignore[arg-type]

    def __enter__(self) -> ServerThread:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self.call(self._stop.set)
        self._thread.join(10)


@pytest.fixture
def ws_server() -> Iterator[ServerThread]:
    with ServerThread() as srv:
        yield srv


def _rows(settings: Settings) -> tuple[int, int, int]:
    with connect(settings) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM md.orderbook_snapshot), "
            "(SELECT count(*) FROM md.orderbook_snapshot WHERE sid IS NOT NULL), "
            "(SELECT count(*) FROM md.orderbook_delta)"
        ).fetchone()
    assert row is not None
    return int(str(row[0])), int(str(row[1])), int(str(row[2]))


def test_recorder_thread_records_and_stops_cleanly(
    settings: Settings, ws_server: ServerThread
) -> None:
    assert ws_server.server is not None
    local = settings.model_copy(update={"kalshi_ws_url_override": ws_server.server.url})
    recorder = RecorderThread(local, [TICKER]).start()
    deadline = time.monotonic() + 10
    while _rows(settings)[0] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    server = ws_server.server
    ws_server.call(lambda: server.feed_delta(TICKER, "yes", Decimal("0.41"), Decimal("3")))
    while _rows(settings)[2] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    recorder.stop()
    assert not recorder.alive and recorder.error is None
    snapshots, with_sid, deltas = _rows(settings)
    assert snapshots == 2 and with_sid == 2  # the YES and the NO level, tied to their sid
    assert deltas == 1
    assert recorder.rows == 3
