"""Ownership of a Train-page run in real browsers (Debian chromium through Playwright): it
survives a page reload (the owner token is in a cookie, not only in the Streamlit session) and
never crosses to another browser (a second browser context has its own cookies).

Waits are for elements to appear, never for a time; a tiny model trains meanwhile and is
stopped through the page at the end.
"""

from pathlib import Path

from test_browser import BROWSER_ARGS, CHROMIUM, playwright_api, pytestmark, server, wait_idle

from qfitlatent.train import jobs

__all__ = ["pytestmark", "server"]  # the fixture and the skip marks come from test_browser

STOP = "Stop this run"
OTHER = "Started by another visitor"


def open_train_page(browser, url):
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.goto(url + "/Train")
    page.locator('[data-testid="stMain"]').get_by_text("Runs", exact=True).wait_for()
    wait_idle(page)
    return page


def live_panel(page) -> str:
    """Which control the live panel shows this visitor: the Stop button, or the note that
    someone else started the run (waits for the fragment to draw one of them)."""
    either = page.get_by_role("button", name=STOP).or_(page.get_by_text(OTHER))
    either.first.wait_for()
    return "stop" if page.get_by_role("button", name=STOP).count() else "other"


def stop_all_runs(base: Path) -> None:
    """Stop, as an operator, every run this pytest session's servers still have going: the
    trainer outlives the server (its own session), so a failed check must not leave it running."""
    for job_file in base.glob("*/runs/*/job.json"):
        job = jobs.load_job(job_file.parent)
        if job.active:
            jobs.stop(job, operator=True)


def test_a_reload_keeps_the_stop_button_and_another_browser_never_gets_it(server, tmp_path_factory):
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
        try:
            owner = open_train_page(browser, server)
            main = owner.locator('[data-testid="stMain"]')
            main.locator('[data-testid="stSelectbox"]').filter(has_text="Start from").click()
            owner.get_by_role("option", name="from scratch (random initialisation)").click()
            wait_idle(owner)
            main.get_by_label("Epochs", exact=True).fill(
                "1000"
            )  # still going when the checks below run
            main.get_by_label("More settings (KEY=VALUE …)", exact=True).fill(
                "n_blocks=1 d_s=16 d_z=8 crop_size=96"
            )
            main.get_by_role("button", name="Start training").click()
            assert live_panel(owner) == "stop"
            owner.reload()
            assert live_panel(owner) == "stop"  # the same browser, a new Streamlit session
            visitor = open_train_page(browser, server)
            assert live_panel(visitor) == "other"
            visitor.reload()
            assert live_panel(visitor) == "other"
            owner.get_by_role("button", name=STOP).click()
            owner.get_by_text("Running:").wait_for(state="detached")
        finally:
            browser.close()
            stop_all_runs(tmp_path_factory.getbasetemp())
