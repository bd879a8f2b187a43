"""The evaluation as one self-contained HTML page (no scripts, no network)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, select_autoescape

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>kwx evaluate {{ s.from }} → {{ s.to }}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
.ahead { background: #d7f5d7; } .behind { background: #f8d4d4; } .tie { background: #f4f4f4; }
.met { color: #176b17; font-weight: bold; } .missed { color: #a11; font-weight: bold; }
.note { color: #555; }
</style></head><body>
<h1>kwx evaluate: {{ s.from }} → {{ s.to }}</h1>
<p class="note">Every figure is out of sample: each fit ends two days before the first scored
day and the pool is refitted walk-forward inside the range. Verdicts compare p_fused with the
market's own p_mkt by log-loss of the settled bracket, with a 95% interval that resamples whole
events: <b>tie</b> means the interval spans zero. Backtest P&amp;L is after fees; read each run's
quote and fill assumptions in its notes.</p>
<p>{{ s.quote_model }}</p>
<h2>Targets</h2>
<table><tr><th class="l">target</th><th class="l">measured</th><th>result</th></tr>
{% for t in s.targets %}<tr><td class="l">{{ t.target }}</td><td class="l">{{ t.value|js }}</td>
<td class="{{ 'met' if t.met else 'missed' }}">{{ 'met' if t.met else 'missed' }}</td></tr>
{% endfor %}</table>
<h2>Pooled backtests</h2>
<p>Pooled mean per-bracket Brier of p_fused at local midnight:
{{ s.pooled.brier_p_fused_00|f4 }} ({{ s.pooled.n_events_00 }} events).</p>
<table><tr><th class="l">fill model</th><th>net P&amp;L $</th><th>95% interval (days)</th>
<th>contracts</th><th>$/contract</th><th>daily Sharpe</th></tr>
{% for fm, b in s.pooled.backtests.items() %}<tr><td class="l">{{ fm }}</td><td>{{ b.net_pnl }}</td>
<td>[{{ b.net_pnl_ci95[0] }}, {{ b.net_pnl_ci95[1] }}]</td><td>{{ b.contracts }}</td>
<td>{{ b.net_pnl_per_contract|f4 }}</td><td>{{ b.sharpe_daily|f2 }}</td></tr>{% endfor %}</table>
{% for c in s.cities %}
<h2>{{ c.city }} — {{ c.n_scored_days }} scored days {{ c.scored_from }} → {{ c.scored_to }}</h2>
<p class="note">Fits end {{ c.fits_end }}; weather fitted {{ c.weather_fit[0] }} →
{{ c.weather_fit[1] }} ({{ c.obs_source }} observations, {{ c.forecast_source }} forecasts);
pool and classifiers trained on {{ c.train_days }} settled days.
{% for n in c.notes %}<br>{{ n }}{% endfor %}</p>
<table><tr><th>hour</th><th>events</th><th>log-loss p_fused</th><th>p_mkt</th><th>p_wx</th>
<th>gain vs p_mkt [95%]</th><th>verdict</th><th>Brier p_fused</th><th>p_mkt</th>
<th>ECE p_fused</th><th>p_mkt</th></tr>
{% for h in c.hours %}<tr class="{{ h.verdict }}"><td>{{ h.hour }}</td><td>{{ h.n_events }}</td>
<td>{{ h.log_loss.p_fused_norm|f4 }}</td><td>{{ h.log_loss.p_mkt|f4 }}</td>
<td>{{ h.log_loss.p_wx|f4 }}</td>
<td>{{ h.gain_vs_mkt|f4 }} [{{ h.gain_ci[0]|f4 }}, {{ h.gain_ci[1]|f4 }}]</td>
<td>{{ h.verdict }}</td><td>{{ h.brier.p_fused_norm|f4 }}</td><td>{{ h.brier.p_mkt|f4 }}</td>
<td>{{ h.ece.p_fused_norm|f4 }}</td><td>{{ h.ece.p_mkt|f4 }}</td></tr>{% endfor %}</table>
<table><tr><th>hour</th>{% for m in crps_models %}<th>CRPS {{ m }} °F</th>{% endfor %}</tr>
{% for hour, row in c.crps.items() %}<tr><td>{{ hour }}</td>
{% for m in crps_models %}<td>{{ row.get(m)|f2 }}</td>{% endfor %}</tr>{% endfor %}</table>
<table><tr><th class="l">fill model</th><th>net P&amp;L $</th><th>fees $</th><th>contracts</th>
<th>$/contract</th><th>maker / taker fills</th><th>daily Sharpe</th><th>max drawdown $</th>
<th class="l">notes</th></tr>
{% for fm, b in c.backtests.items() %}<tr><td class="l">{{ fm }}</td><td>{{ b.net_pnl }}</td>
<td>{{ b.fees }}</td><td>{{ b.contracts_traded }}</td><td>{{ b.net_pnl_per_contract }}</td>
<td>{{ b.maker_fills }} / {{ b.taker_fills }}</td><td>{{ b.sharpe_daily|f2 }}</td>
<td>{{ b.max_drawdown }}</td><td class="l">{{ b.notes|join('; ') }}</td></tr>{% endfor %}</table>
{% endfor %}
{% if s.skipped %}<h2>Not evaluated</h2><ul>
{% for k in s.skipped %}<li>{{ k.city }}: {{ k.reason }}</li>{% endfor %}</ul>{% endif %}
</body></html>
"""


def _fmt(digits: int) -> Any:
    def fmt(value: object) -> str:
        if value is None:
            return "—"
        try:
            return f"{float(str(value)):.{digits}f}"
        except ValueError:
            return str(value)

    return fmt


def render(summary: dict[str, Any]) -> str:
    """The page for :func:`kwx.evaluate.summary.summarise`'s dict."""
    env = Environment(autoescape=select_autoescape(default=True))
    env.filters["f2"] = _fmt(2)
    env.filters["f4"] = _fmt(4)
    env.filters["js"] = lambda v: v if isinstance(v, str) else json.dumps(v)
    crps_models = sorted({m for c in summary["cities"] for row in c["crps"].values() for m in row})
    return env.from_string(_TEMPLATE).render(s=summary, crps_models=crps_models)


def write_page(summary: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(summary), encoding="utf-8")
    return path
