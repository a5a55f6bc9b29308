"""The monitoring dashboard in a real browser: ``make monitoring-ui`` over demo-drift's workspace.

Reuses the session's drift scenario (``drift_scenario``: four windows, an alarm, a retraining,
the shadow, its promotion and the recovery), starts the UI as ``make monitoring-ui`` does, and
checks in headless Chromium that every panel renders with one bar per window and series. Chromium is
Debian's package (``make test`` installs it where it can); playwright's own browser download
is not used. Saves ``reports/monitoring-dashboard.png``. About 30 s after the scenario.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from config.settings import REPO_ROOT
from monitoring.workspace import FIGURES
from tests.integration.lambda_stack import free_port

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(1800)]

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    # The closed network refuses Chromium's background connections; without these it waits.
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = REPO_ROOT / "reports" / "monitoring-dashboard.png"
WINDOWS = 4  # phase1-known, phase2-unseen, phase3-shadow, phase4-after-promotion


def chromium() -> str:
    """The system Chromium, or a failure that names the package (never a silent skip)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail(
            "the browser test needs Chromium: install Debian's 'chromium' package "
            "(`apt-get install chromium`; `make test` does it as root on Debian/Ubuntu)"
        )
    return found


@pytest.fixture(scope="module")
def dashboard(drift_scenario):
    """``make monitoring-ui``'s command over the scenario's workspace."""
    workspace = drift_scenario.reports_dir / "monitoring" / "workspace"
    port = free_port()
    env = {**os.environ, "MONITORING_WORKSPACE": str(workspace), "MONITORING_UI_PORT": str(port)}
    log = (drift_scenario.reports_dir / "monitoring-ui.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "orchestration.monitoring_ui"],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/projects", timeout=5) as reply:
                    projects = json.loads(reply.read())
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"the UI did not start: {Path(log.name).read_text()[-2000:]}"
                    )
                time.sleep(1)
        yield url, projects
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_every_panel_renders_one_bar_per_window(dashboard, drift_scenario):
    from playwright.sync_api import sync_playwright

    url, projects = dashboard
    (project,) = projects
    assert project["name"] == "mushroom-classifier monitoring"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{url}/projects/{project['id']}", wait_until="networkidle")
            page.wait_for_function(
                f"document.querySelectorAll('.MuiCard-root svg rect[class*=MuiBarElement-series-]')"
                f".length >= "
                f"{WINDOWS * len(FIGURES)}",
                timeout=60_000,
            )
            # Per panel (a card): its title and the number of bars of each series (a bar per
            # window: the line charts joined discrete windows with a smoothed curve).
            panels = page.evaluate(
                """() => Array.from(document.querySelectorAll('.MuiCard-root')).map(card => {
                    const series = {};
                    card.querySelectorAll('svg rect').forEach(c => {
                        const name = Array.from(c.classList).find(
                            k => k.startsWith('MuiBarElement-series-'));
                        if (name) series[name] = (series[name] || 0) + 1;
                    });
                    return {title: card.innerText.split('\\n')[0], text: card.innerText,
                            series: Object.values(series)};
                })"""
            )
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
    by_title = {p["title"]: p for p in panels}
    assert set(FIGURES.values()) <= set(by_title), sorted(by_title)
    for title in FIGURES.values():
        assert by_title[title]["series"], f"panel {title!r} drew no series"
        assert all(n == WINDOWS for n in by_title[title]["series"]), by_title[title]
    # The two alarmed figures also draw their thresholds (terraform/vars/local.tfvars).
    unknown = by_title[FIGURES["UnknownRate"]]
    assert len(unknown["series"]) == 2 and "alarm threshold 0.2" in unknown["text"]
    assert "alarm threshold 0.01" in by_title[FIGURES["FalseEdibleRate"]]["text"]
    print(f"screenshot: {SCREENSHOT}")
