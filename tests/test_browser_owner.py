"""Ownership of a Train-page run in real browsers (Debian chromium through Playwright): it
survives a page reload (the owner token is in a cookie, not only in the Streamlit session) and
never crosses to another browser (a second browser context has its own cookies).

The run is a tiny model trained for 2 epochs: it ends on its own within seconds, and the
fixture stops whatever is left, so a failed or interrupted test leaves no trainer behind.
Nothing here depends on how fast it trains: each check reads the page once it is idle, and a
run still going (its owner sees Stop) and a run that has ended (its owner sees Delete) are
both answers; only a visitor who may control someone else's run, or an owner who may not
control their own, fails.
"""

import os
import signal
import time
from pathlib import Path

import pytest
from test_browser import BROWSER_ARGS, CHROMIUM, playwright_api, pytestmark, server, wait_idle

from qfitlatent.train import jobs

__all__ = ["pytestmark", "server"]  # the fixture and the skip marks come from test_browser

RUN = "owner-check"

# What the page shows this visitor about the run, read in one go once no script run is going
# (no stale elements): "stop" / "other" while the run is going, "delete" / "none" after it.
CONTROLS = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  const main = document.querySelector('[data-testid="stMain"]');
  if (!app || !main || app.dataset.testScriptState !== 'notRunning') return null;
  if (main.querySelector('[data-testid="stAlertContentError"]')) return 'error';
  const buttons = [...main.querySelectorAll('button')].map(b => b.innerText);
  const text = main.innerText;
  if (buttons.some(t => t.includes('Stop this run'))) return 'stop';
  if (text.includes('Started by another visitor')) return 'other';
  if (text.includes('Running:') || !text.includes('Details of run')) return null;
  return buttons.some(t => t.includes('Delete this run')) ? 'delete' : 'none';
}"""


def controls(page) -> str:
    return page.wait_for_function(CONTROLS).json_value()


def open_train_page(browser, url):
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.goto(url + "/Train")
    page.locator('[data-testid="stMain"]').get_by_text("Runs", exact=True).wait_for()
    wait_idle(page)
    return page


def end_run(run_dir: Path, limit_s: float = 120.0) -> bool:
    """Stop a run as an operator and wait until its processes are gone; kill them if a stop is
    not heeded within `limit_s` (a limit on a hang, not a speed). True when it had to kill."""
    job = jobs.load_job(run_dir)
    if job.active:
        jobs.stop(job, operator=True)
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        job = jobs.load_job(run_dir)
        if not job.active and not job.alive:
            return False
        time.sleep(0.2)
    for pid, start in ((job.pid, job.pid_start), (job.trainer_pid, job.trainer_start)):
        if jobs.pid_alive(pid, start):
            os.killpg(os.getpgid(pid), signal.SIGKILL)
    return True


@pytest.fixture
def runs_ended(tmp_path_factory):
    """After the test, passed or not, no run of this session's servers is left going: the
    trainer runs in its own session and would outlive the server."""
    yield
    run_dirs = [f.parent for f in tmp_path_factory.getbasetemp().glob("*/runs/*/job.json")]
    killed = [d.name for d in run_dirs if end_run(d)]
    assert not killed, f"runs that ignored a stop and were killed: {killed}"


def test_a_reload_keeps_the_owners_controls_and_another_browser_never_gets_them(server, runs_ended):
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
        try:
            owner = open_train_page(browser, server)
            main = owner.locator('[data-testid="stMain"]')
            main.locator('[data-testid="stSelectbox"]').filter(has_text="Start from").click()
            owner.get_by_role("option", name="from scratch (random initialisation)").click()
            wait_idle(owner)
            main.get_by_label("Run name", exact=True).fill(RUN)
            main.get_by_label("Epochs", exact=True).fill("2")
            main.get_by_label("More settings (KEY=VALUE …)", exact=True).fill(
                "n_blocks=1 d_s=16 d_z=8 crop_size=96"
            )
            main.get_by_role("button", name="Start training").click()
            seen = [controls(owner)]
            owner.reload()  # the same browser, a new Streamlit session
            seen.append(controls(owner))
            assert seen[0] in ("stop", "delete") and seen[1] in ("stop", "delete"), seen
            visitor = open_train_page(browser, server)  # another browser: its own cookies
            seen.append(controls(visitor))
            visitor.reload()
            seen.append(controls(visitor))
            assert seen[2] in ("other", "none") and seen[3] in ("other", "none"), seen
            print(f"\nowner, owner reloaded, visitor, visitor reloaded: {seen}")
        finally:
            browser.close()
