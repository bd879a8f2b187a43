"""md.candles_1m_grid(): any market's candles on a full 1-minute grid.

md.candles_1m holds a row only for minutes where something happened (as Kalshi emits candles
on change). Consumers that need every minute call this function: quiet minutes get the last
known closes carried forward, volume 0 and has_trade = false. A row's values are those of the
minute starting at ts, known once that minute has closed (ts + 1 minute).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

FUNCTION = r"""
CREATE FUNCTION md.candles_1m_grid(p_ticker text, p_from timestamptz, p_to timestamptz)
RETURNS TABLE (ticker text, ts timestamptz, price_close numeric, yes_bid_close numeric,
               yes_ask_close numeric, volume numeric, has_trade boolean, has_candle boolean)
LANGUAGE sql STABLE AS $$
    SELECT p_ticker, g.ts,
           (SELECT c.price_close FROM md.candles_1m c
             WHERE c.ticker = p_ticker AND c.ts <= g.ts AND c.price_close IS NOT NULL
             ORDER BY c.ts DESC LIMIT 1),
           (SELECT c.yes_bid_close FROM md.candles_1m c
             WHERE c.ticker = p_ticker AND c.ts <= g.ts AND c.yes_bid_close IS NOT NULL
             ORDER BY c.ts DESC LIMIT 1),
           (SELECT c.yes_ask_close FROM md.candles_1m c
             WHERE c.ticker = p_ticker AND c.ts <= g.ts AND c.yes_ask_close IS NOT NULL
             ORDER BY c.ts DESC LIMIT 1),
           coalesce(here.volume, 0),
           coalesce(here.has_trade, false),
           here.ts IS NOT NULL
    FROM generate_series(date_trunc('minute', p_from), p_to, interval '1 minute') AS g(ts)
    LEFT JOIN md.candles_1m here ON here.ticker = p_ticker AND here.ts = g.ts
    ORDER BY g.ts
$$;
"""


def upgrade() -> None:
    op.execute(FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS md.candles_1m_grid(text, timestamptz, timestamptz)")
