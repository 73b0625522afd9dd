"""The app with a map in a real browser (streamlit + Debian's chromium via Playwright, as in
test_browser.py): the example with its map draws the map's meshes in 3Dmol (and the toggle takes
them away), the Ringer curves in the χ plot with their σ scale, the call-from column in the
table; a map that cannot be used is a warning on a page that keeps the structure's prediction.
Screenshots go to test-artifacts/. Every wait is for a state of the page, never for a time.
"""

from test_browser import (  # noqa: F401  (server and page are fixtures)
    ARTIFACTS,
    TABLE_FRAME,
    TEXT_PROBLEMS,
    VIEWER_FRAME,
    full_screenshot,
    open_example,
    page,
    server,
    wait_full_page,
    wait_idle,
)

MAP_EXAMPLE = "Example with its map"
VIEWER = """() => [...document.querySelectorAll('iframe')].map(f => { try {
    return f.contentWindow.qfitViewer; } catch (e) { return null; } }).find(v => v)"""
SHAPES = f"() => ({VIEWER})().shapes.length"  # 3Dmol keeps each isosurface as a shape
RINGER = """() => { const g = qfitPlots()
    .find(g => g.layout.meta === 'chi-circles');
  return {traces: g.data.filter(d => d.meta === 'ringer').map(d => d.name),
          drawn: g.querySelectorAll('g.polar3 path.js-line').length,
          notes: g.layout.annotations.map(a => a.text)}; }"""


def mesh_switch(pg):
    """The sidebar's toggle (streamlit names its container after the widget's key)."""
    return pg.locator(".st-key-map_mesh label").first


def test_example_with_its_map_shows_meshes_ringer_and_call_from(server, page):  # noqa: F811
    seconds = open_example(page, server, MAP_EXAMPLE)
    print(f"\nexample with its map: click → viewer + plots drawn: {seconds:.1f} s (first)")
    page.get_by_text("it speaks for").first.wait_for()  # the map's status line
    assert page.evaluate(SHAPES) == 3  # 2mFo-DFc +1σ, mFo-DFc +3σ and −3σ
    ringer = page.evaluate(RINGER)
    assert ringer["traces"] == ["2mFo-DFc at γ (σ, Ringer)", "mFo-DFc at γ (σ, Ringer)"]
    assert ringer["drawn"] >= 2  # plotly drew both curves on the overlaid σ axis
    assert any(n.startswith("radius") and "σ at the rim" in n for n in ringer["notes"])
    headers = page.frame_locator(TABLE_FRAME).locator("th").all_inner_texts()
    assert "call from" in headers and "network p_flexible" in headers
    assert page.get_by_text("Does the crystal show a second conformer?").count() >= 1
    page.mouse.move(2, 2)
    assert page.evaluate(TEXT_PROBLEMS) == []  # the σ lines fit beside everything else
    page.locator(VIEWER_FRAME).screenshot(path=str(ARTIFACTS / "app_map_viewer.png"))
    full_screenshot(page, "app_map_example.png")

    mesh_switch(page).click()
    wait_full_page(page)
    page.wait_for_function(f"() => ({VIEWER})() && ({VIEWER})().shapes.length === 0")
    mesh_switch(page).click()
    wait_full_page(page)
    page.wait_for_function(f"() => ({VIEWER})() && ({VIEWER})().shapes.length === 3")


def test_a_bad_map_is_a_warning_and_the_prediction_stays(server, page, tmp_path):  # noqa: F811
    open_example(page, server, "Example: 1ATG")
    bad = tmp_path / "notes.mtz"
    bad.write_text("these are my notes, not a map\n" * 40)
    # The second upload box of the sidebar is the map's.
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').nth(1).set_input_files(str(bad))
    page.get_by_text("The map cannot be used").first.wait_for()
    wait_full_page(page)
    warning = page.locator('[data-testid="stAlertContentWarning"]').filter(
        has_text="The map cannot be used"
    )
    assert "notes.mtz" in warning.first.inner_text()
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0
    assert "Traceback" not in page.content()
    assert page.evaluate(SHAPES) == 0 and page.evaluate(RINGER)["traces"] == []
    assert page.get_by_text("Flexibility table").count() == 1
    full_screenshot(page, "app_bad_map.png", 1200)
