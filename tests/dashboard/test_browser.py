"""The dashboard in a real headless browser (Debian's chromium, driven by Selenium).

The app is served on loopback exactly as `kwx dashboard` serves it (uvicorn), over the test
store (a real imported day, a real backtest, a paper run's rows), its clock at noon of the
day. Each page must load and draw with no console error; the numbers the pages show must be
the store's; a decision written to the store must appear on the open Decisions page without
a reload; clicking it must draw the market's minute chart.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from kwx.dashboard.app import create_app
from kwx.dashboard.server import serve_in_thread
from kwx.store.engine import connect
from tests.conftest import needs_data
from tests.dashboard.conftest import NOW, Store

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [
    needs_data(),
    pytest.mark.skipif(
        CHROMIUM is None or CHROMEDRIVER is None,
        reason="Debian's chromium and chromium-driver are not installed "
        "(apt-get install -y chromium chromium-driver; .ci/run installs them)",
    ),
]

if CHROMIUM is not None and CHROMEDRIVER is not None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

WAIT_S = 10


@pytest.fixture(scope="module")
def base_url(store: Store) -> Iterator[str]:
    with serve_in_thread(create_app(store.settings, clock=lambda: NOW)) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument("--window-size=1400,1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _open(driver: Any, url: str) -> None:
    driver.get(url)
    WebDriverWait(driver, WAIT_S).until(
        lambda d: d.find_element(By.ID, "content").text not in ("", "loading…")
    )


def _errors(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


PAGES = ("/", "/pnl", "/models", "/decisions", "/readiness", "/alerts")


def test_every_page_loads_and_draws_without_console_errors(browser: Any, base_url: str) -> None:
    browser.get_log("browser")  # drop anything from before
    for path in PAGES:
        _open(browser, base_url + path)
        assert _errors(browser) == [], path
    # The charts were drawn by the plotly.js the app served (no CDN).
    _open(browser, base_url + "/models")
    assert browser.execute_script("return typeof Plotly") == "object"
    assert browser.find_elements(By.CSS_SELECTOR, "#roll-brier .main-svg")
    scripts = browser.execute_script("return [...document.scripts].map(s => s.src).filter(s => s)")
    assert all(s.startswith(base_url) for s in scripts), scripts


def test_numbers_shown_are_the_stores(browser: Any, base_url: str, store: Store) -> None:
    bt = store.backtest
    _open(browser, base_url + "/pnl")
    row = browser.find_element(By.CSS_SELECTOR, f'tr[data-run="backtest-{bt.run_id}"]')
    for cls, value in (
        ("net_pnl", bt.metrics.net_pnl),
        ("maker_fees", bt.metrics.maker_fees),
        ("taker_fees", bt.metrics.taker_fees),
        ("max_drawdown", bt.metrics.max_drawdown),
    ):
        assert Decimal(row.find_element(By.CSS_SELECTOR, f"td.{cls}").text) == value, cls
    paper = browser.find_element(By.CSS_SELECTOR, f'tr[data-run="paper-{store.paper_run}"]')
    assert Decimal(paper.find_element(By.CSS_SELECTOR, "td.net_pnl").text) == bt.metrics.net_pnl

    _open(browser, base_url + "/")
    with connect(store.settings) as conn:
        held = conn.execute(
            "SELECT ticker, position_fp FROM exec.positions "
            "WHERE mode = 'paper' AND run_id = %s AND position_fp <> 0 ORDER BY ticker",
            (store.paper_run,),
        ).fetchall()
    shown = [
        (r.get_attribute("data-ticker"), r.find_element(By.CSS_SELECTOR, "td.position").text)
        for r in browser.find_elements(By.CSS_SELECTOR, "#positions tbody tr")
    ]
    assert held and shown == [(t, f"{Decimal(str(p)):.2f}") for t, p in held]
    run = browser.find_element(By.CSS_SELECTOR, f'#runs tr[data-run="paper-{store.paper_run}"]')
    assert run.find_element(By.CSS_SELECTOR, "td.killed").text == "armed"
    assert run.find_element(By.CSS_SELECTOR, "td.day_pnl").text == "-1.25"

    _open(browser, base_url + "/models")
    with connect(store.settings) as conn:
        rows = conn.execute(
            "SELECT p.p_wx, m.result FROM pmf.minute p JOIN kalshi.markets m USING (ticker) "
            "WHERE p.ts = %s AND m.climate_date = %s",
            (dt.datetime(2024, 12, 5, 16, tzinfo=dt.UTC), dt.date(2024, 12, 5)),
        ).fetchall()
    outcomes = [(float(str(p)), 1.0 if r == "yes" else 0.0) for p, r in rows]
    brier = sum((p - y) ** 2 for p, y in outcomes) / len(outcomes)
    cell = browser.find_element(By.CSS_SELECTOR, '#headline tr[data-model="p_wx"] td.brier')
    assert rows and cell.text == f"{brier:.4f}"


def test_a_new_decision_appears_without_reload_and_opens_its_chart(
    browser: Any, base_url: str, store: Store
) -> None:
    _open(browser, base_url + "/decisions?mode=paper")
    browser.execute_script("window.__notReloaded = true")
    ticker = store.backtest.fills[0].ticker
    payload = {"intent": "limit", "execution": "maker", "outcome": "dashboard-test-row"}
    with connect(store.settings) as conn:
        row = conn.execute(
            "INSERT INTO exec.decisions (mode, run_id, ts, ticker, payload) "
            "VALUES ('paper', %s, %s, %s, %s) RETURNING decision_id",
            (store.paper_run, NOW, ticker, json.dumps(payload)),
        ).fetchone()
        conn.commit()
    assert row is not None
    selector = f'#decisions tr[data-id="{row[0]}"]'
    WebDriverWait(browser, WAIT_S).until(lambda d: d.find_elements(By.CSS_SELECTOR, selector))
    assert browser.execute_script("return window.__notReloaded") is True
    new = browser.find_element(By.CSS_SELECTOR, selector)
    assert new.find_element(By.CSS_SELECTOR, "td.outcome").text == "dashboard-test-row"
    new.click()
    WebDriverWait(browser, WAIT_S).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#market-chart .main-svg")
    )
    traces = browser.execute_script(
        "return document.getElementById('market-chart').data.map(t => [t.name, t.x.length])"
    )
    assert any(name.startswith("p_wx") and n > 0 for name, n in traces), traces
    assert _errors(browser) == []
