"""The app in a real browser: streamlit on a free port, Debian's chromium driven by Playwright.

Checks what AppTest cannot: 3Dmol.js really loads from the app's static folder (offline) and
draws (pixel variance of the viewer), plotly charts really render with traces, a bad upload
shows an error in the page, and the Train page swaps in the inputs of the data source a visitor
picks. Screenshots go to test-artifacts/ (gitignored) for a human to look
at. Prints the time from clicking "Open the example" to the full page (viewer + plots drawn).
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import tiny_checkpoint

from qfitlatent.checkpoint import default_weights

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) or shutil.which("chromium")),
    reason="chromium is not installed (apt-get install chromium; `make test` does it as root)",
)


def healthy(url: str) -> bool:
    try:
        return urllib.request.urlopen(url + "/_stcore/health", timeout=5).status == 200
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    env = dict(os.environ, QFITLATENT_RUNS=str(tmp / "runs"), OMP_NUM_THREADS="1")
    if not default_weights().is_file():  # the app's default model; a tiny one keeps the test fast
        env["QFITLATENT_WEIGHTS"] = str(tiny_checkpoint(tmp / "tiny.pt"))
    port = free_port()
    log = open(tmp / "streamlit.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        # A generous limit, not a guess at speed: on a loaded machine starting takes long.
        deadline = time.monotonic() + 300
        while not healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("streamlit did not start:\n" + (tmp / "streamlit.log").read_text())
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:  # never leave a server behind
            proc.kill()
            proc.wait()
        log.close()


# Every plotly chart shown, as `qfitPlots()` in the page's scripts: those of the page and those in
# the app's own components' iframes (the profile, the χ figures), hidden ones left out; and
# `qfitOnPage(el)`, an element's box on the page, inside an iframe too.
PLOTS_JS = """window.qfitPlots = () => [document, ...[...document.querySelectorAll('iframe')]
  .map(f => { try { return f.contentDocument; } catch (e) { return null; } })]
  .flatMap(d => d ? [...d.querySelectorAll('.js-plotly-plot')] : [])
  .filter(g => !g.closest('[hidden]'));
window.qfitOnPage = (el) => {  // el's box in the page's coordinates, from inside an iframe too
  const r = el.getBoundingClientRect(), f = el.ownerDocument.defaultView.frameElement;
  const o = f ? f.getBoundingClientRect() : {left: 0, top: 0};
  return {left: r.left + o.left, top: r.top + o.top, width: r.width, height: r.height}; };"""


VIEWER_FRAME = 'iframe[title$="qfitlatent_viewer"]'  # Streamlit titles a component's iframe
TABLE_FRAME = 'iframe[title$="qfitlatent_table"]'  # the flexibility table (viz/table_component)
PLOT_DRAWN = "() => qfitPlots().some(g => g.querySelector('.main-svg'))"  # a first chart drawn


@pytest.fixture(scope="module")
def page(server):
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
        pg = browser.new_page(viewport={"width": 1440, "height": 1000})
        pg.set_default_timeout(120_000)
        pg.add_init_script(PLOTS_JS)
        yield pg
        browser.close()


# No script run going: Streamlit marks its state on the app element. (Its status widget is no
# test: it shows a Stop button, no text saying 'Running', and only after 500 ms of a run.)
IDLE = (
    "() => document.querySelector('[data-testid=\"stApp\"]')?.dataset.testScriptState"
    " === 'notRunning'"
)


def wait_idle(page) -> None:
    page.wait_for_function(IDLE)


def full_screenshot(page, name: str, height: int = 2900) -> None:
    """Streamlit scrolls inside its own container, so grow the viewport to capture it all."""
    size = page.viewport_size
    page.mouse.move(size["width"] - 5, 5)  # no hover tooltip in the picture
    page.set_viewport_size({"width": size["width"], "height": height})
    page.wait_for_timeout(1200)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)
    page.set_viewport_size(size)


# Numbered marks for the README's "Reading the results" screenshot: (number, what to mark).
README_MARKS = [
    (1, ".st-key-example"),
    (2, "plot:profile"),
    (3, VIEWER_FRAME),
    (4, "[data-testid=stMain] [data-testid=stSelectbox]"),
    (5, "plot:chi-circles"),
    (6, "plot:torus"),
    (7, TABLE_FRAME),
    (8, "[data-testid=stDownloadButton]"),
]


BADGE_JS = """([n, x, y]) => {
  const d = document.createElement('div');
  d.className = 'qfit-mark';
  d.textContent = n;
  Object.assign(d.style, {position: 'fixed', left: Math.max(2, x - 30) + 'px',
    top: (y - 2) + 'px', width: '26px', height: '26px', borderRadius: '13px',
    background: '#d7191c', color: 'white', font: 'bold 15px sans-serif', display: 'flex',
    alignItems: 'center', justifyContent: 'center', zIndex: 2147483647,
    boxShadow: '0 0 0 2px white'});
  document.body.appendChild(d); }"""


def annotated_screenshot(page, path: Path, height: int = 3000) -> None:
    """A full-page screenshot with numbered badges on the parts the README explains."""
    size = page.viewport_size
    page.mouse.move(size["width"] - 5, 5)
    page.set_viewport_size({"width": size["width"], "height": height})
    page.wait_for_timeout(1500)
    for n, what in README_MARKS:
        if what.startswith("plot:"):  # a plotly chart, found by the name in its layout
            box = page.evaluate(
                "(m) => { const g = qfitPlots()"
                ".find(g => g.layout && g.layout.meta === m); if (!g) return null;"
                " const r = qfitOnPage(g); return {x: r.left, y: r.top}; }",
                what[5:],
            )
        else:
            loc = page.locator(what).first
            b = loc.bounding_box() if loc.count() else None
            box = b and {"x": b["x"], "y": b["y"]}
        if box:
            page.evaluate(BADGE_JS, [n, box["x"], box["y"]])
    page.screenshot(path=str(path), full_page=True)
    page.evaluate("() => document.querySelectorAll('.qfit-mark').forEach(d => d.remove())")
    page.set_viewport_size(size)


def canvas_variance(page) -> float:
    """Pixel variance of the viewer iframe's screenshot: ~0 for a blank (white) viewer."""
    import io

    import numpy as np
    from PIL import Image

    shot = page.locator(VIEWER_FRAME).screenshot()
    return float(np.asarray(Image.open(io.BytesIO(shot)).convert("L"), dtype=float).var())


EXAMPLE_BUTTON = "Example: cyclophilin A"


# The viewer component's window (viz/viewer_component): the iframe whose window has the viewer.
VIEWER_WINDOW = """(() => { const f = [...document.querySelectorAll('iframe')].find(f => { try {
    return f.contentWindow.qfitViewer; } catch (e) { return false; } });
  return f && f.contentWindow; })()"""
# The viewer has drawn the residue the χ plots show (its last scene's focus).
VIEWER_SHOWS_CHI_RESIDUE = f"""() => {{ const w = {VIEWER_WINDOW};
  const g = qfitPlots()
    .find(g => g.layout && g.layout.meta === 'chi-circles');
  if (!w || !w.qfitReady || !w.qfitFocus || !g) return false;
  const resid = g.layout.annotations[0].text.replace('<b>', '').split(' ')[0];
  return resid === w.qfitFocus[0] + w.qfitFocus[1] + w.qfitFocus[2]; }}"""


def wait_full_page(page) -> None:
    """Every chart drawn and the viewer drawn on the residue they show, the script idle."""
    wait_idle(page)
    page.wait_for_function(
        "() => { const p = qfitPlots();"
        " return p.length >= 2"
        " && p.every(g => g.querySelector('.main-svg') && (g.data || []).length); }"
    )
    page.wait_for_function(VIEWER_SHOWS_CHI_RESIDUE)


def open_example(page, url: str, button: str = EXAMPLE_BUTTON) -> float:
    """Load the page, click an example, wait for viewer + plots; seconds from the click."""
    page.goto(url)
    page.wait_for_selector('[data-testid="stApp"]')
    button = page.get_by_role("button", name=button)
    button.wait_for()
    wait_idle(page)
    t0 = time.perf_counter()
    button.click()
    page.wait_for_function(PLOT_DRAWN)
    wait_full_page(page)
    return time.perf_counter() - t0


# The checks the issue asks for, in the browser's own terms.
RESIDUE_IN_VIEW = """([chain, resi]) => {
  const f = [...document.querySelectorAll('iframe')].find(f => { try {
      return f.contentWindow.qfitViewer; } catch (e) { return false; } });
  const v = f.contentWindow.qfitViewer;
  const atoms = v.selectedAtoms({model: 0, chain: chain, resi: resi});
  const canvas = f.contentDocument.querySelector('canvas').getBoundingClientRect();
  const xy = v.modelToScreen(atoms);
  return {n: atoms.length, outside: xy.filter(p => !(p.x >= 0 && p.y >= 0
      && p.x <= canvas.width && p.y <= canvas.height)).length};
}"""
TEXT_PROBLEMS = """() => { const out = [];
  for (const plot of qfitPlots()) {
    const frame = plot.querySelector('.main-svg').getBoundingClientRect();
    // Hover boxes are transient and drawn over everything on purpose: not part of the layout.
    const texts = [...plot.querySelectorAll('svg text')]
      .filter(t => t.textContent.trim() && !t.closest('.hoverlayer'))
      .map(t => { const b = t.getBoundingClientRect();
                  return {t: t.textContent, x0: b.left, y0: b.top, x1: b.right, y1: b.bottom}; })
      .filter(b => b.x1 > b.x0);
    for (let i = 0; i < texts.length; i++) {
      const a = texts[i];
      if (a.x0 < frame.left - 0.5 || a.y0 < frame.top - 0.5 || a.x1 > frame.right + 0.5
          || a.y1 > frame.bottom + 0.5) out.push('clipped: ' + a.t);
      for (let j = i + 1; j < texts.length; j++) {
        const b = texts[j];
        const ox = Math.min(a.x1, b.x1) - Math.max(a.x0, b.x0);
        const oy = Math.min(a.y1, b.y1) - Math.max(a.y0, b.y0);
        if (ox > 1 && oy > 1) out.push('overlap: ' + a.t + ' | ' + b.t);
      }
    }
  }
  return out; }"""


def selected_residue(page) -> tuple[str, int]:
    """(chain, number) of the residue the χ plots show, from their title ("A69 ARG: …")."""
    title = page.evaluate(
        "() => qfitPlots().find(g => g.layout.meta === 'chi-circles').layout.annotations[0].text"
    )
    resid = title.replace("<b>", "").split()[0]
    num = "".join(c for c in resid[1:] if c.isdigit() or c == "-")
    return resid[0], int(num)


def assert_residue_in_view_and_text_clean(page) -> None:
    page.mouse.move(2, 2)  # no hover box left from a click
    chain, resi = selected_residue(page)
    seen = page.evaluate(RESIDUE_IN_VIEW, [chain, resi])
    assert seen["n"] > 0 and seen["outside"] == 0, (chain, resi, seen)
    assert page.evaluate(TEXT_PROBLEMS) == []


def profile_bar(page, skip: list[str], only: str | None = None) -> dict:
    """{x, y, label}: the page position of the tallest bar of the profile whose residue is not in
    `skip` (and is `only`, when given)."""
    return page.evaluate(
        """([skip, only]) => { const gd = qfitPlots()
             .find(g => g.layout.meta === 'profile');
           (gd.ownerDocument.defaultView.frameElement || gd).scrollIntoView({block: 'center'});
           let best = null, height = 0;
           gd.querySelectorAll('.trace.bars').forEach((trace, t) => {
             const bars = gd.data.filter(d => d.type === 'bar')[t];
             trace.querySelectorAll('.point path').forEach((p, k) => {
               const b = qfitOnPage(p);
               const lab = bars.customdata[k][1];
               if (b.height > height && !skip.includes(lab) && (only === null || lab === only)) {
                 height = b.height;
                 best = {x: b.left + b.width / 2, y: b.top + b.height / 2,
                         label: bars.customdata[k][1]};
               } }); });
           return best; }""",
        [skip, only],
    )


def click_profile_bar(page, skip: str, only: str | None = None) -> str:
    """Click the tallest bar of the profile that is not residue `skip` (and is residue `only`,
    when given); returns its label."""
    target = profile_bar(page, [skip], only)
    page.mouse.click(target["x"], target["y"])
    return target["label"]


def wait_for_residue(page, label: str) -> None:
    page.wait_for_function(
        "(lab) => { const g = qfitPlots()"
        ".find(g => g.layout.meta === 'chi-circles');"
        " return g && g.layout.annotations[0].text.includes(lab); }",
        arg=label,
    )
    wait_full_page(page)


def test_example_renders_viewer_and_plots(server, page):
    cold = open_example(page, server)  # predicts: model load, featurize, sample, build
    cached = open_example(page, server)  # a fresh page: the prediction comes from the cache
    print(f"\nexample: click → viewer + plots drawn: {cold:.1f} s (first), {cached:.1f} s (cached)")
    page.wait_for_timeout(800)
    page.locator(VIEWER_FRAME).screenshot(path=str(ARTIFACTS / "app_viewer.png"))
    full_screenshot(page, "app_example.png")
    annotated_screenshot(page, ARTIFACTS / "app_example_annotated.png")

    assert canvas_variance(page) > 50.0, "the 3D viewer is blank"
    n_traces = page.evaluate("() => qfitPlots().map(p => (p.data || []).length)")
    assert n_traces and min(n_traces) > 0, "a plotly chart has no traces"
    scripts = page.evaluate(
        f"() => [...{VIEWER_WINDOW}.document.querySelectorAll('script[src]')].map(s => s.src)"
    )
    assert any(s.endswith("/app/static/3Dmol-min.js") for s in scripts), scripts
    assert not any("cdn" in s for s in scripts), scripts
    assert page.get_by_text("Flexibility table").count() == 1
    assert page.get_by_text("training structure").count() >= 1  # 3K0N is said to be seen
    assert_residue_in_view_and_text_clean(page)


def circle_title(page) -> str:
    return page.evaluate(
        "() => qfitPlots().find(g => g.layout.meta === 'chi-circles').layout.annotations[0].text"
    )


# Marks the viewer's window, its viewer and its canvas (the WebGL context's) before a residue
# change; KEPT then says whether the same window, viewer and canvas are still there after it.
# Rebuilding the viewer's iframe (what every residue change did before the viewer component)
# loses all three.
MARK_VIEWER = f"""() => {{ const w = {VIEWER_WINDOW};
  w.__mark = {{viewer: w.qfitViewer, canvas: w.document.querySelector('canvas')}}; }}"""
KEPT = f"""() => {{ const w = {VIEWER_WINDOW}; const m = w && w.__mark;
  return !!m && m.viewer === w.qfitViewer && m.canvas === w.document.querySelector('canvas')
    && m.canvas.isConnected; }}"""
# Records every value of the app's script state from now on (a MutationObserver), so a test can
# see that a rerun happened however fast it was: RERAN is true once one ran and ended.
WATCH_RUNS = """() => { const app = document.querySelector('[data-testid="stApp"]');
  window.__states = [];
  new MutationObserver(() => window.__states.push(app.dataset.testScriptState))
    .observe(app, {attributes: true, attributeFilter: ['data-test-script-state']}); }"""
RERAN = (
    "() => (window.__states || []).includes('running')"
    " && document.querySelector('[data-testid=\"stApp\"]').dataset.testScriptState"
    " === 'notRunning'"
)


def test_table_row_click_selects_residue_and_viewer_keeps_its_state(server, page):
    before = circle_title(page)
    page.evaluate(MARK_VIEWER)
    table = page.frame_locator(TABLE_FRAME)
    rows_received = table.locator("body").evaluate("() => window.qfitTableData")
    row = table.locator("tr.row").nth(3)  # the table's fourth row
    row.scroll_into_view_if_needed()
    label = row.locator("td").nth(1).inner_text()
    row.click()
    # The chart may be absent for a moment while the page reruns: wait, do not fail, then.
    page.wait_for_function(
        "(before) => { const g = qfitPlots()"
        ".find(g => g.layout && g.layout.meta === 'chi-circles');"
        " return g && g.layout.annotations[0].text != before; }",
        arg=before,
    )
    wait_full_page(page)  # the viewer too draws the new residue
    after = circle_title(page)
    assert after != before and label in after
    assert table.locator("tr.selected td").nth(1).inner_text() == label
    assert_residue_in_view_and_text_clean(page)
    # The new residue went to the viewer that was there: same window, viewer and WebGL canvas.
    assert page.evaluate(KEPT), "the viewer was rebuilt for a change of residue"
    # A rerun that changes nothing the viewer shows (Streamlit's R key: rerun the page) keeps it
    # too, and the residue. That rerun is seen to happen (the script ran and ended), not assumed.
    page.evaluate(WATCH_RUNS)
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.keyboard.press("r")
    page.wait_for_function(RERAN)
    wait_full_page(page)
    assert circle_title(page) == after
    assert page.evaluate(KEPT), "the viewer was reloaded by a rerun that did not change it"
    # The table kept its rows through the click and the rerun: they were not sent again.
    assert table.locator("body").evaluate("() => window.qfitTableData") == rows_received


ROTATION = """() => { const f = [...document.querySelectorAll('iframe')].find(f => { try {
    return f.contentWindow.qfitViewer; } catch (e) { return false; } });
  return f.contentWindow.qfitViewer.getView().slice(4, 8); }"""


def test_profile_click_selects_residue_and_keeps_the_users_rotation(server, page):
    before = circle_title(page)
    # Rotate the view as a user would: drag across the viewer.
    box = page.locator(VIEWER_FRAME).bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 120, cy + 40, steps=8)
    page.mouse.up()
    page.wait_for_timeout(300)
    rotated = page.evaluate(ROTATION)
    page.evaluate(MARK_VIEWER)
    label = click_profile_bar(page, skip=before.replace("<b>", "").split(":")[0])
    wait_for_residue(page, label)
    assert label in circle_title(page)
    assert_residue_in_view_and_text_clean(page)
    kept = page.evaluate(ROTATION)
    assert kept == pytest.approx(rotated, abs=1e-6), "the user's rotation was reset"
    assert page.evaluate(KEPT), "the viewer was rebuilt for a change of residue"


def test_residue_box_change_updates_plots_and_the_same_viewer(server, page):
    shown = circle_title(page).replace("<b>", "").split(":")[0]  # "A69 ARG"
    page.evaluate(MARK_VIEWER)
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text="Residue (most flexible")
    box.click()
    option = page.get_by_role("option").filter(has_not_text=shown).nth(2)
    target = option.inner_text().strip()
    option.click()
    wait_for_residue(page, target)  # χ plots, then the viewer on the same residue
    assert_residue_in_view_and_text_clean(page)
    assert page.evaluate(KEPT), "the viewer was rebuilt for a change of residue"


def test_large_structure_shows_the_residue_and_clean_plots(server, page):
    from conftest import data_file

    path = data_file("3wip.cif.gz")  # 10 chains, 2,023 residues
    page.goto(server)
    page.wait_for_selector('[data-testid="stApp"]')
    wait_idle(page)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(path))
    page.wait_for_function(  # the start box goes at once; a progress bar says what runs
        "() => !document.body.innerText.includes('Open a bundled example')"
    )
    page.wait_for_function(PLOT_DRAWN, timeout=300_000)
    wait_full_page(page)
    n_tracks = page.evaluate(
        "() => Object.keys(qfitPlots()"
        ".find(g => g.layout.meta === 'profile').layout).filter(k => /^yaxis\\d*$/.test(k)).length"
    )
    assert n_tracks == 10  # one track per chain
    assert_residue_in_view_and_text_clean(page)
    full_screenshot(page, "app_large.png", 3400)
    label = click_profile_bar(page, skip=circle_title(page).split(":")[0])
    wait_for_residue(page, label)
    assert_residue_in_view_and_text_clean(page)


def test_unseen_example_says_so(server, page):
    open_example(page, server, "Example: 1ATG")
    assert page.get_by_text("held out of every training run").count() == 1
    assert_residue_in_view_and_text_clean(page)


def test_bad_upload_shows_error_and_app_recovers(server, page, tmp_path):
    bad = tmp_path / "notes.pdb"
    bad.write_text("these are my lab notes, not coordinates\n" * 20)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(bad))
    page.wait_for_selector('[data-testid="stAlertContentError"]')
    wait_idle(page)
    text = page.locator('[data-testid="stAlertContentError"]').first.inner_text()
    full_screenshot(page, "app_bad_upload.png", 1000)
    assert "cannot be used" in text and "Traceback" not in page.content()
    # The example still opens after the failed upload.
    page.get_by_role("button", name=EXAMPLE_BUTTON).click()
    page.wait_for_function(PLOT_DRAWN)
    wait_idle(page)
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0


def test_train_page_shows_the_inputs_of_the_chosen_data_source(server, page):
    page.goto(server + "/Train")
    page.wait_for_selector('[data-testid="stApp"]')
    page.get_by_text("Fine-tune").first.wait_for()
    main = page.locator('[data-testid="stMain"]')
    main.get_by_text("Runs", exact=True).wait_for()  # the run that draws the page has begun
    wait_idle(page)  # and ended: every element is in, none stale
    dropzone = main.locator('[data-testid="stFileUploaderDropzoneInput"]')
    bundled = main.get_by_text("4 small X-ray structures")
    # The bundled sample is the default: its note, no file input, and no runs in a fresh folder.
    assert bundled.count() == 1 and dropzone.count() == 0
    assert main.get_by_text("No runs yet.").count() == 1
    full_screenshot(page, "train_page.png", 1800)
    main.get_by_text("upload structures or a .zip").click()
    dropzone.wait_for(state="attached")
    wait_idle(page)
    # The upload source: a file input in the form, the bundled sample's note gone.
    assert dropzone.count() == 1 and bundled.count() == 0
    assert main.get_by_text("Structures (.pdb/.cif, .gz) or a .zip of them").count() == 1
    assert page.locator('[data-testid="stException"]').count() == 0


# The number of atoms model 0 holds, and every 20th one's line: a sample of the structure's
# text to look for in what the server sends.
MODEL_LINES = f"""() => {{ const atoms = {VIEWER_WINDOW}.qfitViewer.getModel(0).selectedAtoms({{}});
  return [atoms.length, atoms.filter((a, k) => k % 20 === 0).map(a => a.pdbline)]; }}"""


def choose_in_the_box(page, k: int) -> str:
    """Choose the residue `k` places down the residue box (the one shown left out), as a user
    does, and wait until the page shows it; returns its label."""
    shown = circle_title(page).replace("<b>", "").split(":")[0]
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text="Residue (most flexible")
    box.click()
    option = page.get_by_role("option").filter(has_not_text=shown).nth(k)
    target = option.inner_text().strip()
    option.click()
    wait_for_residue(page, target)
    return target


def sidebar_nav(page, name: str) -> None:
    """Go to another page of the app as a user does: its link in the sidebar (no reload)."""
    page.locator('[data-testid="stSidebarNav"] a').filter(has_text=name).first.click()


def test_whole_structure_text_is_sent_once_and_the_viewer_redrawn_after_train_and_reload(
    server, page
):
    frames: list[bytes] = []  # what the server sends the page, frame by frame

    def listen(ws):
        ws.on("framereceived", lambda payload: frames.append(
            payload if isinstance(payload, bytes) else payload.encode()))  # fmt: skip

    page.on("websocket", listen)
    open_example(page, server)
    page.evaluate(WATCH_RUNS)
    frames.clear()
    page.get_by_text("whole structure (faded)").click()
    page.wait_for_function(RERAN)
    wait_full_page(page)
    n_atoms, lines = page.evaluate(MODEL_LINES)
    assert n_atoms > 1000  # the whole structure, not a neighbourhood of a few hundred atoms
    sent = b"".join(frames)
    assert all(line.encode() in sent for line in lines)  # the check sees text when it is sent
    # A residue change in whole mode: the scene, not the structure's text again.
    frames.clear()
    choose_in_the_box(page, 2)
    sent = b"".join(frames)
    print(f"\nwhole mode, residue change: {len(sent):,} bytes from the server")
    assert not any(line.encode() in sent for line in lines), "the structure's text was re-sent"
    assert_residue_in_view_and_text_clean(page)
    # To the Train page and back: a new viewer iframe, which must be sent the text again.
    sidebar_nav(page, "Train")
    page.get_by_text("Fine-tune").first.wait_for()
    wait_idle(page)
    sidebar_nav(page, "app")
    page.wait_for_function(PLOT_DRAWN)
    wait_full_page(page)
    assert_residue_in_view_and_text_clean(page)
    assert canvas_variance(page) > 50.0, "the 3D viewer is blank after a return from Train"
    asks = page.evaluate(f"() => {VIEWER_WINDOW}.qfitAsks || 0")
    print(f"after Train and back: drawn, {asks} request(s) for the text")
    # A reload (open_example loads the page again): a new session, a new iframe.
    open_example(page, server)
    assert_residue_in_view_and_text_clean(page)
    assert canvas_variance(page) > 50.0, "the 3D viewer is blank after a reload"
    page.remove_listener("websocket", listen)


def test_a_visit_to_train_keeps_the_upload_the_display_settings_and_the_residue(
    server, page, tmp_path
):
    """Streamlit forgets the widgets of a page it leaves: back from Train, the upload was gone
    (the start box again), and the toggles and the residue were back to their defaults."""
    mine = tmp_path / "mine.pdb.gz"
    mine.write_bytes((ROOT / "qfitlatent/data/3k0n_single.pdb.gz").read_bytes())
    page.goto(server)
    page.wait_for_selector('[data-testid="stApp"]')
    wait_idle(page)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(mine))
    page.wait_for_function(PLOT_DRAWN, timeout=300_000)
    wait_full_page(page)
    target = choose_in_the_box(page, 3)
    switch = page.locator(".st-key-flex_colour input")
    page.evaluate(WATCH_RUNS)
    page.locator(".st-key-flex_colour label").first.click()
    page.wait_for_function(RERAN)
    assert not switch.is_checked()

    sidebar_nav(page, "Train")
    page.get_by_text("Fine-tune").first.wait_for()
    wait_idle(page)
    sidebar_nav(page, "app")
    page.get_by_text("Open an example").first.wait_for()  # the main page's sidebar
    wait_idle(page)
    assert page.get_by_text("Open a bundled example").count() == 0  # not the start box
    assert page.get_by_text("In use: your structure").count() == 1
    page.wait_for_function(PLOT_DRAWN)
    wait_full_page(page)
    assert target in circle_title(page)
    assert not page.locator(".st-key-flex_colour input").is_checked()
    assert_residue_in_view_and_text_clean(page)
