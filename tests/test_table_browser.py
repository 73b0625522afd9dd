"""The flexibility table's component in a real browser without a server: its index.html opened
from the package folder and render messages posted to it as Streamlit would, with rows made by
viz.table.payload from rows like the app's.

What it must do for the page: keep 50,000 rows without putting them all in the page (only the
rows in sight are drawn, and scrolling draws the others), sort on a header click with missing
values last, mark the residue the server says is shown (scrolled into sight), send a row click
at once as its position in the rows as sent, and ask for rows it does not hold instead of
drawing nothing. The server's side: tests/test_app.py.
"""

from pathlib import Path

from test_table import rows_like_the_apps
from test_viewer_browser import RENDER, browser, pytestmark  # chromium, as for the viewer

from qfitlatent.viz import table

__all__ = ["browser", "pytestmark"]  # the fixture and the skip mark come from there
ROOT = Path(__file__).resolve().parents[1]
COMPONENT = ROOT / "qfitlatent" / "viz" / "table_component" / "index.html"

# The component posts to window.parent, which is the page itself here: keep its values.
LISTEN = """() => { window.__values = [];
  window.addEventListener('message', (e) => {
    if (e.data && e.data.type === 'streamlit:setComponentValue') window.__values.push(e.data.value);
  }); }"""
SHOWN = """() => [...document.querySelectorAll('tr.row')].map(r => Number(r.dataset.row))"""
TO_THE_END = "() => { const w = document.getElementById('wrap'); w.scrollTop = w.scrollHeight; }"


def args(n: int, selected: int = 0, send: bool = True) -> dict:
    body = table.payload(*rows_like_the_apps(n))
    return {"columns": body["columns"] if send else None, "rows": body["rows"] if send else None,
            "hash": body["hash"], "selected": selected, "height": 320}  # fmt: skip


def open_component(browser):
    page = browser.new_page(viewport={"width": 1000, "height": 600})
    page.set_default_timeout(30_000)
    page.goto(COMPONENT.as_uri())
    page.evaluate(LISTEN)
    return page


def render(page, message: dict) -> None:
    before = page.evaluate("() => window.qfitTableRenders || 0")
    page.evaluate(RENDER, message)
    page.wait_for_function(f"() => (window.qfitTableRenders || 0) > {before}")


def test_fifty_thousand_rows_are_drawn_as_they_come_into_sight(browser):
    page = open_component(browser)
    render(page, args(50_000))
    shown = page.evaluate(SHOWN)
    assert shown[0] == 0 and len(shown) < 60  # the rows in sight and a margin, not 50,000
    # The scroll height is that of every row: the last one can be scrolled to, and is drawn.
    page.evaluate(TO_THE_END)
    page.wait_for_function("() => [...document.querySelectorAll('tr.row')]"
                           ".some(r => r.dataset.row === '49999')")  # fmt: skip
    assert len(page.evaluate(SHOWN)) < 60
    last = page.locator('tr.row[data-row="49999"]')
    assert last.locator("td").nth(1).inner_text() == "D50000 LYS"
    box, frame = last.bounding_box(), page.locator("#wrap").bounding_box()
    assert frame["y"] <= box["y"] and box["y"] + box["height"] <= frame["y"] + frame["height"] + 1
    page.close()


def test_a_header_click_sorts_with_missing_values_last_then_back(browser):
    page = open_component(browser)
    render(page, args(300))
    spread = page.locator("th", has_text="χ1 spread")
    values = "() => [...document.querySelectorAll('tr.row')].map(r => r.cells[COL].textContent)"
    col = [c.name for c in (c for _, c in table.FIRST + table.REST)].index("χ1 spread")
    values = values.replace("COL", str(col))
    spread.click()  # numbers: largest first
    first = page.evaluate(values)
    assert first[0] == "89°" and "▼" in spread.inner_text()
    spread.click()  # then smallest first; the NaN rows still last
    assert page.evaluate(values)[0] == "0°"
    page.evaluate(TO_THE_END)
    page.wait_for_function(f"() => ({values})().slice(-1)[0] === '–'")
    spread.click()  # third click: as sent again
    page.evaluate("() => { document.getElementById('wrap').scrollTop = 0; }")
    page.wait_for_function(f"() => ({SHOWN})()[0] === 0")
    assert "▲" not in spread.inner_text() and "▼" not in spread.inner_text()
    page.close()


def test_the_shown_residue_is_marked_and_scrolled_to_and_a_click_is_sent_at_once(browser):
    page = open_component(browser)
    render(page, args(2_000, selected=0))
    assert page.evaluate("() => document.querySelector('tr.selected').dataset.row") == "0"
    render(page, args(2_000, selected=1_500, send=False))  # another residue chosen in the box
    row = page.locator('tr.row[data-row="1500"]')
    assert "selected" in row.get_attribute("class")
    row.click()  # the residue already shown: still a click the server counts
    page.locator('tr.row[data-row="1503"]').click()
    values = page.evaluate("() => window.__values")
    assert [v["row"] for v in values] == [1500, 1503]
    assert [v["click"] for v in values] == [1, 2] and values[0]["view"] == values[1]["view"]
    # Marked at once, before the server answers.
    assert page.evaluate("() => document.querySelector('tr.selected').dataset.row") == "1503"
    page.close()


def test_a_new_iframe_without_the_rows_asks_for_them(browser):
    page = open_component(browser)
    page.evaluate(RENDER, args(100, send=False))
    page.wait_for_function("() => window.__values.length === 1")
    value = page.evaluate("() => window.__values[0]")
    assert value["hash"] == args(100)["hash"] and value["ask"]
    assert page.evaluate(SHOWN) == []
    render(page, args(100))  # the server's answer
    assert page.evaluate(SHOWN)[0] == 0
    # A click carries the request along, so the server does not read it as a new one.
    page.locator('tr.row[data-row="2"]').click()
    assert page.evaluate("() => window.__values[1]")["ask"] == value["ask"]
    page.close()
