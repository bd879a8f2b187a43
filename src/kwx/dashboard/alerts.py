"""Alerts: conditions read from the store, each fired once, logged, stored and sent.

:func:`evaluate` looks at the store and returns every condition that holds now, each with a
*dedup key* naming that one occurrence (a run's kill, one stale episode of one feed, one seq
gap, one settlement day). :func:`fire` inserts them into ``meta.alerts`` with ON CONFLICT DO
NOTHING: only keys not seen before are logged and POSTed to the webhook, so a condition that
stays true is announced once however often ``kwx alerts check`` runs, restarts included.

Conditions (thresholds in :class:`kwx.dashboard.settings.MonitorSettings`):

* ``kill_switch`` — a paper/live run's newest evaluation says the risk kill switch tripped.
* ``feed_stale`` — while a paper/live run is ``running``: a feed it needs (decisions, weather
  obs, pmf.minute of its cities) has no row newer than ``alert_stale_minutes``.
* ``seq_gap`` — an orderbook delta stream skipped a sequence number and no snapshot of that
  market followed within ``alert_resync_minutes`` (the resync did not happen).
* ``reconciliation`` — a run's restart reconciliation refused orders, an order has been
  ``pending`` (sent, outcome unknown) longer than ``alert_pending_minutes``, or a stored
  position differs from the net of the run's fills.
* ``calibration_drift`` — the rolling 30-settled-day ECE of p_fused_norm (p_wx where there is
  no fused probability) is above ``alert_ece_max``; once per city, probability and ISO week.
* ``settlement_disagreement`` — the official climate report's maximum differs from the
  value Kalshi settled on, over the newest ``alert_settlement_days`` days.
* ``refit_rejected`` — a model run recorded ``accepted: false`` (or ``status: rejected``) in
  its metrics: the refit's candidate lost to the model in use.

Payloads carry only what the store said and never a secret: every configured secret value
is masked out of the serialised payload before it leaves (:func:`scrub`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

import httpx

from kwx.config import Settings
from kwx.dashboard import calibration, queries
from kwx.dashboard.queries import Conn, _rows, jsonable
from kwx.dashboard.settings import MonitorSettings
from kwx.registry import default_registry

log = logging.getLogger("kwx.alerts")

SEVERITY: Final = {
    "kill_switch": "critical",
    "feed_stale": "critical",
    "seq_gap": "warning",
    "reconciliation": "critical",
    "calibration_drift": "warning",
    "settlement_disagreement": "warning",
    "refit_rejected": "info",
}
MASK: Final = "***"


@dataclass(frozen=True)
class Alert:
    """One occurrence of one condition."""

    key: str
    kind: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def severity(self) -> str:
        return SEVERITY[self.kind]


# ---------------------------------------------------------------- conditions


def _recent_runs(conn: Conn, now: dt.datetime) -> list[dict[str, Any]]:
    """Paper/live runs running now or finished in the last two days."""
    return _rows(
        conn,
        """
        SELECT run_id, mode, cities, status, started_at, finished_at, stats
        FROM exec.live_runs
        WHERE status = 'running' OR finished_at > %s ORDER BY run_id
        """,
        (now - dt.timedelta(days=2),),
    )


def kill_switch(conn: Conn, runs: list[dict[str, Any]]) -> list[Alert]:
    out: list[Alert] = []
    for r in runs:
        state = queries.risk_state(conn, r["mode"], r["run_id"])
        risk = (state or {}).get("risk") or {}
        if risk.get("killed"):
            out.append(
                Alert(
                    f"kill_switch:{r['mode']}:{r['run_id']}",
                    "kill_switch",
                    f"{r['mode']} run {r['run_id']}: kill switch tripped "
                    f"({risk.get('kill_reason')}) at {state and state['ts']}",
                    {"run_id": r["run_id"], "mode": r["mode"], "risk": risk},
                )
            )
    return out


def feed_stale(
    conn: Conn, runs: list[dict[str, Any]], now: dt.datetime, ms: MonitorSettings
) -> list[Alert]:
    running = [r for r in runs if r["status"] == "running"]
    if not running:
        return []  # a store with only backtests has no feed to be stale
    limit = dt.timedelta(minutes=ms.alert_stale_minutes)
    cities = sorted({c for r in running for c in r["cities"]})
    newest: dict[str, dt.datetime | None] = {}
    for name, sql in (
        ("decisions", "SELECT max(ts) FROM exec.decisions WHERE mode IN ('paper', 'live')"),
        ("weather obs", "SELECT max(ts) FROM wx.obs"),
    ):
        row = conn.execute(sql).fetchone()
        newest[name] = row[0] if row else None  # type: ignore[assignment]
    for city in cities:
        row = conn.execute("SELECT max(ts) FROM pmf.minute WHERE city = %s", (city,)).fetchone()
        newest[f"pmf.minute {city}"] = row[0] if row else None  # type: ignore[assignment]
    started = min(r["started_at"] for r in running)
    out: list[Alert] = []
    for source, ts in newest.items():
        since = ts if ts is not None else started
        if now - since > limit:
            age = (now - since).total_seconds() / 60
            out.append(
                Alert(
                    f"feed_stale:{source}:{since.isoformat()}",
                    "feed_stale",
                    f"{source}: no new row for {age:.0f} min (newest {ts}) while a run is live",
                    {"source": source, "newest": ts, "minutes": age},
                )
            )
    return out


def seq_gaps(conn: Conn, now: dt.datetime, ms: MonitorSettings) -> list[Alert]:
    resync = dt.timedelta(minutes=ms.alert_resync_minutes)
    rows = _rows(
        conn,
        """
        WITH d AS (
            SELECT ticker, sid, seq, ts,
                   lag(seq) OVER (PARTITION BY ticker, sid ORDER BY seq) AS prev
            FROM md.orderbook_delta WHERE ts > %(since)s
        )
        SELECT d.ticker, d.sid, d.prev, d.seq, d.ts FROM d
        WHERE d.prev IS NOT NULL AND d.seq > d.prev + 1 AND d.ts < %(cutoff)s
          AND NOT EXISTS (
              SELECT 1 FROM md.orderbook_snapshot s
              WHERE s.ticker = d.ticker AND s.ts >= d.ts AND s.ts <= d.ts + %(resync)s)
        ORDER BY d.ts
        """,
        {"since": now - dt.timedelta(days=1), "cutoff": now - resync, "resync": resync},
    )
    return [
        Alert(
            f"seq_gap:{r['ticker']}:{r['sid']}:{r['seq']}",
            "seq_gap",
            f"{r['ticker']} sid {r['sid']}: seq jumped {r['prev']} → {r['seq']} at {r['ts']} "
            f"and no snapshot resynced it within {ms.alert_resync_minutes:g} min",
            r,
        )
        for r in rows
    ]


def reconciliation(
    conn: Conn, runs: list[dict[str, Any]], now: dt.datetime, ms: MonitorSettings
) -> list[Alert]:
    out: list[Alert] = []
    for r in runs:
        refused = ((r["stats"] or {}).get("reconcile") or {}).get("refused") or []
        if refused:
            out.append(
                Alert(
                    f"reconciliation:{r['mode']}:{r['run_id']}:refused",
                    "reconciliation",
                    f"{r['mode']} run {r['run_id']}: reconciliation refused {len(refused)} "
                    "order(s)",
                    {"run_id": r["run_id"], "refused": refused},
                )
            )
    for o in _rows(
        conn,
        """
        SELECT client_order_id::text AS client_order_id, mode, run_id, ticker, created_at
        FROM exec.orders WHERE status = 'pending' AND created_at < %s
        """,
        (now - dt.timedelta(minutes=ms.alert_pending_minutes),),
    ):
        out.append(
            Alert(
                f"reconciliation:pending:{o['client_order_id']}",
                "reconciliation",
                f"{o['mode']} run {o['run_id']}: order {o['client_order_id']} on {o['ticker']} "
                f"pending since {o['created_at']} (outcome unknown)",
                o,
            )
        )
    ids = [r["run_id"] for r in runs]
    for p in _rows(
        conn,
        """
        WITH net AS (
            SELECT mode, run_id, ticker, sum(CASE WHEN (side = 'yes') = (action = 'buy')
                   THEN count_fp ELSE -count_fp END) AS from_fills
            FROM exec.fills WHERE mode IN ('paper', 'live') AND run_id = ANY(%s)
            GROUP BY 1, 2, 3)
        SELECT p.mode, p.run_id, p.ticker, p.position_fp, coalesce(n.from_fills, 0) AS from_fills,
               p.updated_at
        FROM exec.positions p LEFT JOIN net n USING (mode, run_id, ticker)
        WHERE p.mode IN ('paper', 'live') AND p.run_id = ANY(%s)
          AND p.position_fp <> coalesce(n.from_fills, 0)
        """,
        (ids, ids),
    ):
        out.append(
            Alert(
                f"reconciliation:{p['mode']}:{p['run_id']}:{p['ticker']}:{p['updated_at']}",
                "reconciliation",
                f"{p['mode']} run {p['run_id']} {p['ticker']}: position {p['position_fp']} "
                f"but its fills net to {p['from_fills']}",
                p,
            )
        )
    return out


def calibration_drift(conn: Conn, ms: MonitorSettings) -> list[Alert]:
    out: list[Alert] = []
    registry = default_registry()
    for key, s in sorted(queries.series_in_use(conn).items()):
        try:
            city = registry.by_key(key)
        except KeyError:
            continue
        last = s.last_ts.date()
        first = max(s.first_ts.date(), last - dt.timedelta(days=3 * calibration.WINDOW))
        frame = calibration.morning_sample(conn, city, s.mc_version, first, last)
        if frame.empty:
            continue
        for model in ("p_fused_norm", "p_wx"):
            roll = calibration.rolling(frame, model)
            if not roll["day"]:
                continue
            value, day = roll["ece"][-1], roll["day"][-1]
            if value > ms.alert_ece_max:
                year, week, _ = day.isocalendar()
                out.append(
                    Alert(
                        f"calibration_drift:{key}:{model}:{year}-W{week:02d}",
                        "calibration_drift",
                        f"{key} {model} ({s.mc_version}): rolling {calibration.WINDOW}-day ECE "
                        f"{value:.3f} > {ms.alert_ece_max:g} as of {day}",
                        {"city": key, "model": model, "ece": value, "day": day},
                    )
                )
            break  # the fused probability when there is one, else the weather model's
    return out


def settlement_disagreement(conn: Conn, ms: MonitorSettings) -> list[Alert]:
    rows = _rows(
        conn,
        """
        SELECT w.city, w.climate_date, w.tmax_final AS official, m.settled_tmax AS kalshi,
               m.event_ticker
        FROM wx.settlement w
        JOIN kalshi.series s ON s.city_key = w.city
        JOIN LATERAL (
            SELECT max(settled_tmax) AS settled_tmax, max(event_ticker) AS event_ticker
            FROM kalshi.markets m
            WHERE m.series_ticker = s.series_ticker AND m.climate_date = w.climate_date
              AND m.settled_tmax IS NOT NULL) m ON true
        WHERE w.source = 'official' AND m.settled_tmax IS NOT NULL
          AND m.settled_tmax <> w.tmax_final
          AND w.climate_date > (SELECT max(climate_date) FROM wx.settlement) - %s
        ORDER BY w.climate_date, w.city
        """,
        (ms.alert_settlement_days,),
    )
    return [
        Alert(
            f"settlement_disagreement:{r['city']}:{r['climate_date']}",
            "settlement_disagreement",
            f"{r['city']} {r['climate_date']}: official max {r['official']} °F but Kalshi "
            f"settled {r['event_ticker']} on {r['kalshi']} °F",
            r,
        )
        for r in rows
    ]


def refit_rejected(conn: Conn) -> list[Alert]:
    rows = _rows(
        conn,
        """
        SELECT run_id, kind, city, horizon, model_type, created_at,
               coalesce(metrics->>'reason', '') AS reason
        FROM model.runs
        WHERE metrics->>'accepted' = 'false' OR metrics->>'status' = 'rejected'
        ORDER BY run_id
        """,
    )
    return [
        Alert(
            f"refit_rejected:{r['run_id']}",
            "refit_rejected",
            f"model run {r['run_id']} ({r['kind']}, {r['city']}) rejected: {r['reason'] or '?'}",
            r,
        )
        for r in rows
    ]


def evaluate(conn: Conn, now: dt.datetime, ms: MonitorSettings) -> list[Alert]:
    """Every condition that holds at ``now``."""
    runs = _recent_runs(conn, now)
    return [
        *kill_switch(conn, runs),
        *feed_stale(conn, runs, now, ms),
        *seq_gaps(conn, now, ms),
        *reconciliation(conn, runs, now, ms),
        *calibration_drift(conn, ms),
        *settlement_disagreement(conn, ms),
        *refit_rejected(conn),
    ]


# ---------------------------------------------------------------- firing and sending


def secret_values(settings: Settings, ms: MonitorSettings) -> list[str]:
    """Every configured secret (and the database password) that must never leave."""
    out: list[str] = []
    for value in (
        settings.kwx_database_url,
        settings.vc_api_key,
        settings.kalshi_api_key_id,
        ms.alert_webhook_url,
        ms.dashboard_token,
    ):
        if value is not None and value.get_secret_value():
            out.append(value.get_secret_value())
    if settings.kwx_database_url is not None:
        password = httpx.URL(settings.kwx_database_url.get_secret_value()).password
        if password:
            out.append(password)
    return sorted(set(out), key=len, reverse=True)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """The text with every secret value replaced by ``***``."""
    for s in secrets:
        if s:
            text = text.replace(s, MASK)
    return text


def payload(alert: Alert, fmt: str, fired_at: dt.datetime, chat_id: str | None) -> Any:
    """The webhook body: plain JSON, Slack's ``{"text"}`` or Telegram's sendMessage."""
    text = f"[kwx {alert.severity}] {alert.message}"
    if fmt == "slack":
        return {"text": text}
    if fmt == "telegram":
        return {"chat_id": chat_id, "text": text, "disable_web_page_preview": True}
    return jsonable(
        {
            "source": "kwx",
            "key": alert.key,
            "kind": alert.kind,
            "severity": alert.severity,
            "message": alert.message,
            "fired_at": fired_at,
            "details": alert.details,
        }
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


@dataclass
class FireOutcome:
    """What one check did: conditions seen, newly fired, sent, failed to send."""

    holding: int = 0
    fired: list[str] = field(default_factory=list)
    sent: int = 0
    send_errors: int = 0


def fire(
    conn: Conn,
    alerts: list[Alert],
    settings: Settings,
    ms: MonitorSettings,
    *,
    now: dt.datetime,
    client: httpx.Client | None = None,
) -> FireOutcome:
    """Store the alerts not seen before, log them and POST each to the webhook (if set)."""
    secrets = secret_values(settings, ms)
    outcome = FireOutcome(holding=len(alerts))
    for alert in alerts:
        message = scrub(alert.message, secrets)
        details = scrub(json.dumps(jsonable(alert.details), default=_json_default), secrets)
        row = conn.execute(
            "INSERT INTO meta.alerts (dedup_key, kind, severity, message, details, fired_at) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (dedup_key) DO NOTHING "
            "RETURNING dedup_key",
            (alert.key, alert.kind, alert.severity, message, details, now),
        ).fetchone()
        conn.commit()
        if row is None:
            continue
        outcome.fired.append(alert.key)
        log.warning("alert %s [%s]: %s", alert.kind, alert.severity, message)
        if ms.alert_webhook_url is None:
            continue
        clean = Alert(alert.key, alert.kind, message, json.loads(details))
        body = scrub(
            json.dumps(
                payload(clean, ms.alert_webhook_format, now, ms.alert_telegram_chat_id),
                default=_json_default,
            ),
            secrets,
        )
        error = _post(ms.alert_webhook_url.get_secret_value(), body, client)
        conn.execute(
            "UPDATE meta.alerts SET sent_at = CASE WHEN %s::text IS NULL THEN now() END, "
            "send_error = %s WHERE dedup_key = %s",
            (error, error, alert.key),
        )
        conn.commit()
        if error is None:
            outcome.sent += 1
        else:
            outcome.send_errors += 1
            log.error("alert %s: webhook failed: %s", alert.key, error)
    return outcome


def _post(url: str, body: str, client: httpx.Client | None) -> str | None:
    """POST the body; the error as a short text naming no URL (it may hold a token)."""
    own = client is None
    http = client or httpx.Client(timeout=10.0)
    try:
        response = http.post(url, content=body, headers={"Content-Type": "application/json"})
        if response.status_code >= 400:
            return f"HTTP {response.status_code}"
        return None
    except httpx.HTTPError as exc:
        return type(exc).__name__
    finally:
        if own:
            http.close()


def check(
    conn: Conn,
    settings: Settings,
    ms: MonitorSettings,
    *,
    now: dt.datetime | None = None,
    client: httpx.Client | None = None,
) -> FireOutcome:
    """Evaluate every condition and fire the new ones."""
    now = now or dt.datetime.now(dt.UTC)
    return fire(conn, evaluate(conn, now, ms), settings, ms, now=now, client=client)
