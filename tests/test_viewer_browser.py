"""The viewer component in a real browser without a server: its index.html opened from the
package folder, render messages posted to it as Streamlit would, 3Dmol.js from static/.

Checks with 3Dmol itself what tests/test_viewer_exact.py checks against a model of its matching
(the styles an exact scene leaves on trypsin's 65 and 65A), and the component's side of sending
the structure's text once (tests/test_viewer_text.py: the server's side): a scene without text
is drawn on the text held, and a new iframe that gets one asks for the text instead of staying
blank.
"""

import os
import shutil
from pathlib import Path

import gemmi
import pytest
from conftest import data_file
from test_viewer_exact import TRYPSIN, within

from qfitlatent.viz import viewer

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
COMPONENT = ROOT / "qfitlatent" / "viz" / "viewer_component" / "index.html"
SCRIPT = ROOT / "static" / "3Dmol-min.js"

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) or shutil.which("chromium")),
    reason="chromium is not installed (apt-get install chromium; `make test` does it as root)",
)

# The component posts to window.parent, which is the page itself here: keep what it asks for.
LISTEN = """() => { window.__asks = [];
  window.addEventListener('message', (e) => {
    if (e.data && e.data.type === 'streamlit:setComponentValue') window.__asks.push(e.data.value);
  }); }"""
RENDER = "(args) => window.postMessage({type: 'streamlit:render', args: args}, '*')"
# Residues (chain, resi, icode) of model 0 whose atoms carry a style, per style (3Dmol's own).
STYLED = """() => { const out = {line: new Set(), cartoon: new Set()};
  for (const a of window.qfitViewer.getModel(0).selectedAtoms({}))
    for (const s of ['line', 'cartoon'])
      if (a.style && a.style[s]) out[s].add(a.chain + '|' + a.resi + '|' + a.icode.trim());
  return {line: [...out.line], cartoon: [...out.cartoon]}; }"""


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        yield b
        b.close()


def open_component(browser):
    page = browser.new_page(viewport={"width": 800, "height": 600})
    page.set_default_timeout(60_000)
    page.goto(COMPONENT.as_uri())
    page.evaluate(LISTEN)
    return page


def render(page, message: dict) -> None:
    page.evaluate(RENDER, {**message, "js_url": SCRIPT.as_uri()})


def rendered(page, n: int) -> None:
    page.wait_for_function("(n) => window.qfitRenders === n", arg=n)


@pytest.fixture(scope="module")
def trypsin():
    text = viewer.viewer_pdb(gemmi.read_structure(str(data_file(TRYPSIN))))
    return text, viewer.pdb_index(text)


def residues(keys: list[str]) -> set[tuple[str, int, str]]:
    return {(c, int(n), i) for c, n, i in (k.split("|") for k in keys)}


def test_3dmol_styles_exactly_the_residues_in_reach_of_65_not_65a(browser, trypsin):
    text, index = trypsin
    st = gemmi.read_pdb_string(text)
    page = open_component(browser)
    for n, focus in enumerate([("A", 65, ""), ("A", 184, "A")], start=1):
        scene = viewer.ensemble_view(
            text, focus=focus, index=index, labels=[(focus, "here")], residue_colours={}
        )
        render(page, scene.message("trypsin", focus))
        rendered(page, n)
        styled = page.evaluate(STYLED)
        assert residues(styled["line"]) == within(st, focus, 6.0), focus
        assert residues(styled["cartoon"]) == within(st, focus, viewer.CARTOON_A), focus
        centre = scene.calls_to("center")[0][0]
        seen = page.evaluate("(s) => window.qfitViewer.selectedAtoms(s).map(a => a.icode)", centre)
        assert seen and {i.strip() for i in seen} == {focus[2]}  # only the focus residue's atoms
    page.close()


def test_a_scene_without_text_is_drawn_on_the_text_held_and_a_new_iframe_asks(browser, trypsin):
    text, index = trypsin
    first = viewer.ensemble_view(text, focus=("A", 65, "A"), index=index)
    second = viewer.ensemble_view(text, focus=("A", 184, "A"), index=index)
    page = open_component(browser)
    render(page, first.message("trypsin", ("A", 65, "A")))
    message = second.message("trypsin", ("A", 184, "A"), held=first.message()["base_hash"])
    assert message["base"] is None  # the same text: not sent again
    render(page, message)
    rendered(page, 2)
    assert page.evaluate("() => window.qfitFocus") == ["A", 184, "A"]
    assert page.evaluate("() => window.qfitViewer.getModel(0).selectedAtoms({}).length") > 1000
    assert page.evaluate("() => window.__asks") == []
    # A new iframe (a reload, a return from another page) holds no text: it asks, once per
    # scene it cannot draw, naming the text it lacks, and draws when the text comes.
    page.reload()
    page.evaluate(LISTEN)
    render(page, message)
    page.wait_for_function("() => window.__asks.length === 1")
    (ask,) = page.evaluate("() => window.__asks")
    assert ask["base_hash"] == message["base_hash"] and ask["ask"]
    assert page.evaluate("() => window.qfitRenders") is None  # nothing drawn on no text
    render(page, second.message("trypsin", ("A", 184, "A")))  # the server's answer
    rendered(page, 1)
    assert page.evaluate("() => window.qfitFocus") == ["A", 184, "A"]
    render(page, message)  # and it holds the text from then on
    rendered(page, 2)
    assert len(page.evaluate("() => window.__asks")) == 1
    page.close()


def test_3dmol_focuses_chain_ab_residue_not_chain_b_one_of_the_same_number(browser):
    # 3Dmol reads a PDB chain from column 22 alone: written as is, "AB" would read as "B".
    from test_viewer_chains import two_chains_sharing_numbers

    st = two_chains_sharing_numbers()
    index = viewer.viewer_index(st)
    focus = ("AB", 99, "")
    ab = next(r for r in st[0]["AB"] if r.seqid.num == 99)
    # 3Dmol keeps altloc A (or none) of each atom: those, by position.
    expected = sorted((round(a.pos.x, 3), round(a.pos.y, 3), round(a.pos.z, 3))
                      for a in ab if a.altloc in "\0A")  # fmt: skip
    page = open_component(browser)
    for n, whole in enumerate([False, True], start=1):  # the whole text holds chain B too
        drawn = viewer.drawn_pdb(index, [focus], whole)
        scene = viewer.ensemble_view(drawn.text, focus=focus, index=index,
                                     chain_ids=drawn.chain_ids, whole=whole)  # fmt: skip
        render(page, scene.message("two-chains", focus))
        rendered(page, n)
        centre = scene.calls_to("center")[0][0]
        seen = page.evaluate(
            "(s) => window.qfitViewer.selectedAtoms(s).map(a => [a.x, a.y, a.z])", centre
        )
        assert sorted(tuple(round(v, 3) for v in xyz) for xyz in seen) == expected, whole
        back = {cid: name for name, cid in drawn.chain_ids.items()}
        lines = {(back[c], n, i) for c, n, i in residues(page.evaluate(STYLED)["line"])}
        assert lines == within(st, focus, 6.0), whole
    page.close()
