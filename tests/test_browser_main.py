"""The main page's small defects of issue 20, in a real browser (Debian chromium through
Playwright, the server and helpers of test_browser). Every wait is for a state of the page,
never for a time.
"""

import pytest
from test_browser import (
    ARTIFACTS,
    ROTATION,
    VIEWER_FRAME,
    assert_residue_in_view_and_text_clean,
    circle_title,
    click_profile_bar,
    open_example,
    page,
    profile_bar,
    pytestmark,
    selected_residue,
    server,
    wait_for_residue,
    wait_full_page,
    wait_idle,
)

__all__ = ["page", "pytestmark", "server"]  # fixtures and skip marks come from test_browser

# Bars of the profile that plotly draws at full strength while it dims others (its look for a
# selected point), by label; [] when none is dimmed.
STANDING_OUT = """() => {
  const gd = qfitPlots()
    .find(g => g.layout.meta === 'profile');
  const bars = gd.data.filter(d => d.type === 'bar');
  const out = [], dim = [];
  gd.querySelectorAll('.trace.bars').forEach((trace, t) => {
    trace.querySelectorAll('.point path').forEach((p, k) => {
      (parseFloat(getComputedStyle(p).opacity) < 1 ? dim : out).push(bars[t].customdata[k][1]);
    }); });
  return dim.length ? out : []; }"""


def click_table_row(page, n: int) -> None:
    """Click row `n` (from 0, as drawn) of the flexibility table (viz/table_component)."""
    row = page.frame_locator('iframe[title$="qfitlatent_table"]').locator("tr.row").nth(n)
    row.scroll_into_view_if_needed()
    row.click()


def residue_of(title: str) -> str:
    return title.replace("<b>", "").split(":")[0]  # "A69 ARG"


def test_after_a_table_click_the_profile_highlights_no_other_residue(server, page):
    open_example(page, server)
    clicked = click_profile_bar(page, skip=residue_of(circle_title(page)))
    wait_for_residue(page, clicked)
    click_table_row(page, 3)
    page.wait_for_function(  # the table's residue is shown
        "(before) => { const g = qfitPlots()"
        ".find(g => g.layout && g.layout.meta === 'chi-circles');"
        " return g && !g.layout.annotations[0].text.includes(before); }",
        arg=clicked,
    )
    wait_full_page(page)
    shown = residue_of(circle_title(page))
    assert page.evaluate(STANDING_OUT) in ([], [shown]), f"{shown} is shown"
    # The bar clicked first is a new choice again: a click on it shows it.
    again = click_profile_bar(page, skip=shown, only=clicked)
    wait_for_residue(page, again)
    # A residue chosen in the box leaves no other residue highlighted either.
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text="Residue (most flexible")
    box.click()
    page.keyboard.type(shown)
    page.get_by_role("option", name=shown).click()
    wait_for_residue(page, shown)
    assert page.evaluate(STANDING_OUT) in ([], [shown]), f"{shown} is shown"


# The selected residue's atoms on the screen (3Dmol's own projection) and the cartoon's opacity
# around it, as the viewer drew them.
RESIDUE_ON_SCREEN = """([chain, resi]) => {
  const f = [...document.querySelectorAll('iframe')].find(f => { try {
      return f.contentWindow.qfitViewer; } catch (e) { return false; } });
  const v = f.contentWindow.qfitViewer;
  const xy = v.modelToScreen(v.selectedAtoms({model: 0, chain: chain, resi: resi}));
  const xs = xy.map(p => p.x), ys = xy.map(p => p.y);
  const cartoon = v.selectedAtoms({model: 0}).map(a => a.style.cartoon).filter(c => c);
  return {span: Math.max(Math.max(...xs) - Math.min(...xs), Math.max(...ys) - Math.min(...ys)),
          height: f.contentDocument.querySelector('canvas').getBoundingClientRect().height,
          opacities: [...new Set(cartoon.map(c => c.opacity === undefined ? 1 : c.opacity))]};
}"""


CANVAS_SCALE = """() => {
  const f = [...document.querySelectorAll('iframe')].find(f => f.contentWindow.qfitViewer);
  const c = f.contentDocument.querySelector('canvas');
  const gl = document.createElement('canvas').getContext('webgl');
  const info = gl && gl.getExtension('WEBGL_debug_renderer_info');
  return {scale: c.width / c.getBoundingClientRect().width, dpr: f.contentWindow.devicePixelRatio,
          renderer: info ? gl.getParameter(info.UNMASKED_RENDERER_WEBGL) : null};
}"""


PROFILE_GD = "qfitPlots().find(g => g.layout.meta === 'profile')"


def test_two_profile_bars_clicked_one_after_the_other_both_count(server, page):
    """plotly takes a second click within its doubleClickDelay (500 ms by default) as a double
    click: no click event, the axes reset. The profile stays across residue changes, so a bar
    clicked within half a second of the last was lost and the page kept the first residue."""
    open_example(page, server)
    # The profile's plotly counts every click as one (the mode bar's home button resets axes).
    assert page.evaluate(f"() => {PROFILE_GD}._context.doubleClickDelay") < 50
    shown = residue_of(circle_title(page))
    first = profile_bar(page, [shown])
    second = profile_bar(page, [shown, first["label"]])
    page.mouse.click(first["x"], first["y"])
    # At once to the second bar; plotly clicks what it last hovered, so wait for that hover.
    page.mouse.move(second["x"], second["y"])
    page.wait_for_function(
        f"(lab) => ({PROFILE_GD}._hoverdata || []).some(p => p.customdata[1] === lab)",
        arg=second["label"],
    )
    page.mouse.click(second["x"], second["y"])
    wait_for_residue(page, second["label"])
    assert residue_of(circle_title(page)) == second["label"]


def test_the_viewer_opens_close_on_the_residue_with_the_cartoon_faded(server, page):
    open_example(page, server)
    chain, resi = selected_residue(page)
    seen = page.evaluate(RESIDUE_ON_SCREEN, [chain, resi])
    print(f"\nselected residue {chain}{resi}: {seen['span']:.0f} px of {seen['height']:.0f}")
    ARTIFACTS.mkdir(exist_ok=True)  # for a human to look at
    page.locator(VIEWER_FRAME).screenshot(path=str(ARTIFACTS / "app_viewer_close.png"))
    # Close enough to tell its conformers apart: the residue spans a third of the viewer or more
    # (it was about 50 px of 500), and still lies wholly inside it.
    assert seen["span"] >= seen["height"] / 3, seen
    assert_residue_in_view_and_text_clean(page)
    assert seen["opacities"] and max(seen["opacities"]) < 1, seen  # cartoon never hides it
    # Headless chromium draws WebGL in software: there the viewer skips 3Dmol's antialiasing,
    # which draws four times the pixels (a canvas twice the element's size each way).
    canvas = page.evaluate(CANVAS_SCALE)
    assert canvas["renderer"] and "swiftshader" in canvas["renderer"].lower(), canvas
    assert canvas["scale"] == pytest.approx(canvas["dpr"], rel=0.05), canvas


def test_the_users_rotation_survives_a_reload_of_the_page(server, page):
    open_example(page, server)
    box = page.locator(VIEWER_FRAME).bounding_box()  # drag across the viewer, as a user would
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 120, cy + 40, steps=8)
    page.mouse.up()
    page.wait_for_function(  # the drag turned the view away from where the page opened it
        f"(q) => ({ROTATION})().some((v, k) => Math.abs(v - q[k]) > 0.05)", arg=[0, 0, 0, 1]
    )
    rotated = page.evaluate(ROTATION)
    open_example(page, server)  # loads the page again: a new viewer in a new Streamlit session
    assert page.evaluate(ROTATION) == pytest.approx(rotated, abs=1e-6), "the rotation was lost"


# The χ figures' plots component's window (viz/plots_component): its divs and count of draws.
CHI_WINDOW = """(() => { const f = [...document.querySelectorAll('iframe')].find(f => { try {
    return f.contentDocument.getElementById('figure-circle'); } catch (e) { return false; } });
  return f && f.contentWindow; })()"""
CHI_STATE = f"""() => {{ const w = {CHI_WINDOW}, d = w.document.getElementById('figure-circle');
  if (!d.__mark) d.__mark = Math.random();
  return {{draws: w.qfitPlotDraws, renders: w.qfitPlotRenders, mark: d.__mark,
          title: d.layout.annotations[0].text}}; }}"""
VIEWER_RENDERS = """() => [...document.querySelectorAll('iframe')].map(f => { try {
  return f.contentWindow.qfitRenders; } catch (e) { return undefined; } }).find(n => n)"""


def test_the_chi_figures_stay_and_are_drawn_only_when_they_change(server, page):
    """A display setting redraws the viewer, not the χ figures; a new residue draws them once,
    into the same plot (not a new chart): as st.plotly_chart each change made new charts and
    drew each twice."""
    open_example(page, server)
    before = page.evaluate(CHI_STATE)
    renders = page.evaluate(VIEWER_RENDERS)
    page.locator(".st-key-flex_colour label").first.click()
    page.wait_for_function(f"(n) => ({VIEWER_RENDERS})() > n", arg=renders)
    wait_idle(page)
    after_toggle = page.evaluate(CHI_STATE)
    assert after_toggle["draws"] == before["draws"], (before, after_toggle)
    assert after_toggle["mark"] == before["mark"]
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text="Residue (most flexible")
    box.click()
    shown = residue_of(before["title"])
    page.get_by_role("option").filter(has_not_text=shown).first.click()
    page.wait_for_function(f"(t) => ({CHI_STATE})().title !== t", arg=before["title"])
    wait_full_page(page)
    changed = page.evaluate(CHI_STATE)
    n_figures = page.evaluate(f"() => ({CHI_WINDOW}).document.querySelectorAll("
                              "'#plots > div:not([hidden])').length")  # fmt: skip
    assert changed["draws"] - before["draws"] == n_figures, (before, changed)
    assert changed["mark"] == before["mark"], "the χ plot was made anew"
    page.locator(".st-key-flex_colour label").first.click()  # back
    wait_idle(page)
