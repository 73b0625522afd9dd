"""The page keeps its work and says where it is (issue 20), in a real browser (Debian chromium
through Playwright, the server and helpers of test_browser). Nothing is sampled by time: a
MutationObserver installed before each click records every state of the page it goes through.
"""

from conftest import data_file
from test_browser import (
    ARTIFACTS,
    PLOT_DRAWN,
    full_screenshot,
    page,
    pytestmark,
    server,
    wait_full_page,
    wait_idle,
)

__all__ = ["page", "pytestmark", "server"]  # fixtures and skip marks come from test_browser

MANY_CHAINS = "3cyq.pdb.gz"  # 16 protein chains, 2,123 residues: a prediction of seconds
OTHER = "4l7k.pdb.gz"  # 12 chains, 1,486 residues

# Every text the progress bar (or the "Drawing the page" line after it) shows from now on, and
# every moment something said "Done", or the bar went away, while the page was not yet drawn: not
# every plotly chart drawn, or the viewer has not drawn a residue. Streamlit draws each chart
# twice, and a redraw may empty it for a moment: after the page was once seen whole, not counted.
RECORD = """() => {
  window.qfitTexts = []; window.qfitEarly = []; window.qfitBarSeen = false;
  window.qfitDrawn = false;  // once drawn, a chart's later redraw (it empties its svg) is no gap
  const drawn = () => { const plots = qfitPlots();
    return plots.length > 0 && plots.every(p => p.querySelector('.main-svg'))
      && [...document.querySelectorAll('iframe')].some(f => {
        try { return (f.contentWindow.qfitRenders || 0) > 0; } catch (e) { return false; } }); };
  const look = () => {
    const bars = [...document.querySelectorAll('[data-testid="stProgress"], .qfit-drawing')]
      .filter(b => b.offsetParent !== null);  // shown, not hidden
    for (const bar of bars) {
      const text = bar.innerText.trim();
      if (window.qfitTexts[window.qfitTexts.length - 1] !== text) window.qfitTexts.push(text);
      if (text.includes('Done') && !drawn()) window.qfitEarly.push(text);
    }
    if (window.qfitBarSeen && drawn()) window.qfitDrawn = true;
    if (bars.length) window.qfitBarSeen = true;
    else if (window.qfitBarSeen && !window.qfitDrawn && !drawn())
      window.qfitEarly.push('bar gone after ' + window.qfitTexts[window.qfitTexts.length - 1]);
  };
  window.qfitObserver = new MutationObserver(look);
  window.qfitObserver.observe(document.body,
    {subtree: true, childList: true, characterData: true, attributes: true});
  look();
}"""


def upload(page, name: str) -> None:
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(
        str(data_file(name))
    )


def recorded(page) -> tuple[list[str], list[str]]:
    return page.evaluate("() => [window.qfitTexts, window.qfitEarly]")


def test_done_shows_only_when_the_page_is_drawn(server, page):
    """'Done…' showed while the files were written and the page was still blank; then the bar
    went and the page stayed blank while it was drawn."""
    page.goto(server)
    page.wait_for_selector('[data-testid="stApp"]')
    wait_idle(page)
    page.evaluate(RECORD)
    upload(page, OTHER)
    page.wait_for_function(PLOT_DRAWN, timeout=300_000)
    wait_full_page(page)
    texts, early = recorded(page)
    assert texts, "no progress bar was seen: the prediction was kept from an earlier test"
    print("\nprogress:", texts)
    assert early == [], (early, texts)
    assert page.locator('[data-testid="stProgress"]').count() == 0  # gone once drawn
    assert not page.locator(".qfit-drawing").is_visible()
    assert texts[-1] == "Drawing the page…", texts


def test_a_display_toggle_during_a_prediction_does_not_restart_it(server, page):
    """A toggle reran the script, which stopped the prediction; the new run started again from
    'Reading the structure' (40 s of a 4-minute prediction lost). Now the rerun follows it."""
    page.goto(server)
    page.wait_for_selector('[data-testid="stApp"]')
    wait_idle(page)
    upload(page, MANY_CHAINS)
    page.wait_for_function(  # the prediction is past reading the file
        "() => [...document.querySelectorAll('[data-testid=\"stProgress\"]')]"
        ".some(b => /Computing features|Predicting/.test(b.innerText))",
        timeout=300_000,
    )
    page.evaluate(RECORD)
    page.get_by_text("whole structure (faded)").click()
    page.wait_for_function(PLOT_DRAWN, timeout=300_000)
    wait_full_page(page)
    texts, _ = recorded(page)
    print("\nprogress after the toggle:", texts)
    steps = [t for t in texts if t and t != "Drawing the page…"]
    # The toggle came while the prediction ran (else this test would prove nothing) ...
    assert steps, texts
    # ... and the page went on from where it was, never back to the start.
    assert not [t for t in texts if t.startswith(("Reading the structure", "Starting"))], texts
    assert page.get_by_role("switch", name="whole structure (faded)").is_checked()
    ARTIFACTS.mkdir(exist_ok=True)
    full_screenshot(page, "app_many_chains.png", 3400)


def test_many_chains_show_an_overview_and_the_ten_most_flexible(server, page):
    """After the test above (3cyq kept): 16 chains, one overview row each; ten tracks."""
    page.goto(server)
    page.wait_for_selector('[data-testid="stApp"]')
    wait_idle(page)
    upload(page, MANY_CHAINS)
    page.wait_for_function(PLOT_DRAWN, timeout=300_000)
    wait_full_page(page)
    charts = page.evaluate(
        "() => Object.fromEntries(qfitPlots()"
        ".map(g => [g.layout.meta, g]).filter(([m]) => m === 'profile' || m === 'chain-overview')"
        ".map(([m, g]) => [m, m === 'profile'"
        " ? Object.keys(g.layout).filter(k => /^yaxis\\d*$/.test(k)).length"
        " : g.querySelectorAll('.trace.bars .point').length]))"
    )
    assert charts == {"profile": 10, "chain-overview": 16}, charts
    # Each overview row is readable: its chain label does not overlap the next one.
    labels = page.evaluate(
        "() => [...qfitPlots()"
        ".find(g => g.layout.meta === 'chain-overview').querySelectorAll('.ytick text')]"
        ".map(t => { const b = t.getBoundingClientRect(); return [b.top, b.bottom]; })"
    )
    labels.sort()
    assert len(labels) == 16
    assert all(a[1] <= b[0] + 0.5 for a, b in zip(labels, labels[1:], strict=False)), labels
