"""The app as a user feels it, in a real browser: example click to full page, and residue change.

    python benchmarks/bench_app_browser.py                      # this checkout
    python benchmarks/bench_app_browser.py --app-dir /tmp/old   # another checkout, to compare
    python benchmarks/bench_app_browser.py --structure ../shared/data/multiconf/3wip.cif.gz

Starts `streamlit run app.py` from --app-dir on a free port and drives Debian's chromium (headless,
software WebGL) with Playwright, on the same machine, as tests/test_browser.py does.

- example → full page: a fresh page, click the first example button, until the 3D viewer has
  drawn (its canvas has a size) and every plotly chart has its traces, the script idle. One
  warm-up open first, so the prediction is cached and the runs measure the page, not the model
  (the cold open is printed on its own).
- residue change, three ways: a click on a row of the flexibility table, a click on a bar of the
  chain profile, a choice in the residue box; each until the χ plots show the new residue, the
  charts are drawn, the script is idle and the viewer has drawn that residue (the viewer
  component says which residue it drew last; the iframe of older checkouts is waited for until
  its canvas has a size).
- with --structure, the table-click residue change on that uploaded structure (opened once).
- with --compare DIR, the same on a second checkout (e.g. `git archive main`), started after the
  first, and a table with both columns and their ratio.
- with --timeline, where the time of each cached example open goes instead (this checkout
  only): when the script starts and ends, when each chart, the table and the viewer are first
  drawn (a 20 ms poller in the page), the viewer's own draw and when its iframe fetched 3Dmol.js
  — milliseconds from the click. The page has one thread: the poller stalls while it is busy.

Medians of --runs (default 5). The numbers depend on the machine's load: compare two checkouts
back to back, not with numbers from another day.
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]  # fmt: skip

# Every plotly chart of the page, those in the app's own components' iframes (the profile, the
# χ figures) included: an expression for the scripts below.
PLOTS = """[...document.querySelectorAll('.js-plotly-plot'),
  ...[...document.querySelectorAll('iframe')].flatMap(f => { try {
    return [...f.contentDocument.querySelectorAll('.js-plotly-plot')];
  } catch (e) { return []; } })]"""
# Works for the app before and after the layout of issue 13 (title vs first annotation).
CIRCLE_TITLE = """() => { for (const g of PLOTS) {
  if (!g.layout) continue;
  const t = (g.layout.title && g.layout.title.text) || '';
  const a = ((g.layout.annotations || [])[0] || {}).text || '';
  for (const s of [t, a]) if (s.includes('predicted χ densities')) return s; }
  return null; }""".replace("PLOTS", PLOTS)
FULL = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.dataset.testScriptState !== 'notRunning') return false;
  const plots = PLOTS.filter(g => !g.closest('[hidden]'));
  if (plots.length < 2 || !plots.every(g => g.querySelector('.main-svg') && (g.data || []).length))
    return false;
  const title = (CIRCLE)();
  return [...document.querySelectorAll('iframe')].some(f => { try {
    const w = f.contentWindow, d = f.contentDocument;
    if (w.qfitFocus !== undefined)  // the viewer component: it has drawn the shown residue
      return !!title && title.replace('<b>', '').split(' ')[0] === w.qfitFocus.join('');
    const c = d && d.readyState === 'complete' && d.querySelector('canvas');
    return c && c.width > 0; } catch (e) { return false; } });
}""".replace("CIRCLE", CIRCLE_TITLE).replace("PLOTS", PLOTS)
# The tallest bar of the profile that is not the residue shown: its screen position, from the
# data and plotly's axes (the profile may be in an iframe, the app's plots component: its box is
# offset by the frame's).
PROFILE_BAR = """(skip) => { const gd = PLOTS.find(g => g.layout.meta === 'profile');
  const frame = gd.ownerDocument.defaultView.frameElement;
  (frame || gd).scrollIntoView({block: 'center'});
  const o = frame ? frame.getBoundingClientRect() : {left: 0, top: 0};
  const r = gd.getBoundingClientRect(), L = gd._fullLayout;
  let best = null, top = -1;
  gd._fullData.filter(d => d.type === 'bar').forEach(d => {
    const xa = L[d.xaxis.replace('x', 'xaxis')], ya = L[d.yaxis.replace('y', 'yaxis')];
    for (let k = 0; k < d.y.length; k++) {
      if (!(d.y[k] > top) || skip.includes(d.customdata[k][1])) continue;
      top = d.y[k];
      best = {x: o.left + r.left + xa._offset + xa.l2p(d.x[k]),
              y: o.top + r.top + ya._offset + ya.l2p(d.y[k] / 2)}; } });
  return best; }""".replace("PLOTS", PLOTS)


# Row k of the flexibility table's component (viz/table_component), the residue shown left out:
# its centre on the page, or null on a checkout whose table is a st.dataframe grid.
TABLE_ROW = """([k, shown]) => {
  const f = document.querySelector('iframe[title$="qfitlatent_table"]');
  if (!f) return null;
  f.scrollIntoView({block: 'center'});
  const o = f.getBoundingClientRect();
  const rows = [...f.contentDocument.querySelectorAll('tr.row')]
    .filter(r => r.cells[1].textContent !== shown);
  const r = rows[k].getBoundingClientRect();
  return {x: o.left + r.left + 60, y: o.top + r.top + r.height / 2}; }"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(app_dir: Path, log: Path):
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(app_dir),
               PYTHONDONTWRITEBYTECODE="1", QFITLATENT_RUNS=str(log.parent / "runs"))  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=app_dir, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=1).status == 200:
                return proc, url
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    raise RuntimeError("streamlit did not start: " + log.read_text()[-2000:])


@contextmanager
def served_page(app_dir: Path, init_script: str | None = None):
    """(page, url): `app_dir`'s app on its own server, one headless chromium page on it; both
    end with the block."""
    from playwright.sync_api import sync_playwright

    log = Path("/tmp") / f"bench_app_{os.getpid()}.log"
    proc, url = start_server(app_dir.resolve(), log)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.set_default_timeout(300_000)
            if init_script:
                page.add_init_script(init_script)
            yield page, url
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def open_example(page, url) -> float:
    page.goto(url)
    button = page.locator(".st-key-example button").first
    button.wait_for()
    page.wait_for_timeout(300)
    t0 = time.perf_counter()
    button.click()
    page.wait_for_function(FULL)
    return time.perf_counter() - t0


def change_residue(page, how: str, k: int) -> float:
    """Seconds from a residue change (`how`: table, profile or box) to the full page."""
    before = page.evaluate(CIRCLE_TITLE)
    shown = before.replace("<b>", "").split(":")[0]  # "A69 ARG"
    if how == "table" and (row := page.evaluate(TABLE_ROW, [k % 6, shown])):
        t0 = time.perf_counter()
        page.mouse.click(row["x"], row["y"])
    elif how == "table":  # the st.dataframe grid of older checkouts: its row's selection box
        grid = page.locator('[data-testid="stDataFrame"]').last
        grid.scroll_into_view_if_needed()
        box = grid.bounding_box()
        t0 = time.perf_counter()
        page.mouse.click(box["x"] + 20, box["y"] + 36 * (2 + k % 6) + 18)
    elif how == "profile":
        bar = page.evaluate(PROFILE_BAR, shown)
        t0 = time.perf_counter()
        page.mouse.click(bar["x"], bar["y"])
    else:
        box = page.locator('[data-testid="stSelectbox"]').filter(has_text="Residue (most flexible")
        box.click()
        option = page.get_by_role("option").filter(has_not_text=shown).nth(1 + k % 4)
        option.wait_for()
        t0 = time.perf_counter()
        option.click()
    # null while the chart is being replaced during the rerun: that is not the new residue yet.
    page.wait_for_function(
        f"() => {{ const t = ({CIRCLE_TITLE})(); return t !== null && t !== {before!r}; }}"
    )
    page.wait_for_function(FULL)
    return time.perf_counter() - t0


# Installed in the page just before the click: records the script's states and, every 20 ms,
# which charts (by layout.meta), the table and the viewer have drawn; ms from installation.
TIMELINE = """() => { const app = document.querySelector('[data-testid="stApp"]');
  const t0 = performance.now(), at = () => Math.round(performance.now() - t0), seen = new Set();
  window.__timeline = {t0: performance.timeOrigin + t0, events: []};
  const note = (what, extra) => { if (!seen.has(what)) { seen.add(what);
    window.__timeline.events.push([what, at(), ...(extra || [])]); } };
  new MutationObserver(() => window.__timeline.events.push(['script ' + app.dataset.testScriptState,
    at()])).observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
  const poll = setInterval(() => {
    PLOTS.forEach(g => {
      if (g.querySelector('.main-svg') && g.layout) note('chart ' + g.layout.meta); });
    if (document.querySelector('[data-testid="stDataFrame"] canvas')) note('table');
    if (document.querySelector('iframe[title$="qfitlatent_table"]')?.contentWindow
          ?.qfitTableRenders) note('table');
    document.querySelectorAll('iframe').forEach(f => { try { const w = f.contentWindow;
      if (w.qfitRenders) { note('viewer drawn', [Math.round(w.qfitDrawMs)]); clearInterval(poll); }
    } catch (e) {} }); }, 20); }""".replace("PLOTS", PLOTS)
# In the viewer's iframe: when it started loading and when it fetched its scripts, in ms from
# the moment TIMELINE was installed (t0, an absolute time).
IFRAME_TIMES = """(t0) => { const o = performance.timeOrigin - t0;
  return [['viewer iframe opens', Math.round(o)], ...performance.getEntriesByType('resource')
    .map(e => ['fetched ' + e.name.split('/').pop(), Math.round(o + e.responseEnd)])]; }"""


# Before any page script: each plotly chart, when plotly sets it up (Events.init adds a passive
# wheel listener to the chart's div, right before its first draw), gets a listener that records
# its draws (plotly_afterplot, by layout.meta) and whether plotly computed the traces anew.
COUNT_DRAWS = """(() => { window.__draws = []; const add = EventTarget.prototype.addEventListener;
  EventTarget.prototype.addEventListener = function (type, ...rest) {
    if (type === 'wheel' && this.on && !this.__counted) { this.__counted = true; const gd = this;
      let calc = null;  // plotly recomputes (calcdata anew) or keeps what it has drawn
      gd.on('plotly_afterplot', () => { const kept = gd.calcdata === calc; calc = gd.calcdata;
        const meta = (gd.layout || {}).meta;
        window.__draws.push([kept ? 'kept' : 'calc', meta, performance.now()]); });
    }
    return add.call(this, type, ...rest); }; })()"""


# Reset before each change: the draws so far, and a count of the script's (or fragment's) runs.
COUNT_RUNS = """() => { window.__draws = []; window.__runs = 0;
  const app = document.querySelector('[data-testid="stApp"]');
  if (!window.__runObserver) window.__runObserver = new MutationObserver(() => {
    if (app.dataset.testScriptState === 'running') window.__runs += 1; });
  window.__runObserver.observe(app,
    {attributes: true, attributeFilter: ['data-test-script-state']});
}"""


def draws(app_dir: Path, runs: int) -> None:
    """Print, per residue change (table, profile, box), how many times the script or fragment
    ran and each chart's draws: ms from the click, and whether plotly computed the traces anew
    (calc) or kept them (kept)."""
    with served_page(app_dir, COUNT_DRAWS) as (page, url):
        open_example(page, url)
        for how in ("table", "profile", "box"):  # the order of measure()
            for k in range(runs):
                page.evaluate(COUNT_RUNS)
                t0 = page.evaluate("() => performance.now()")
                seconds = change_residue(page, how, k)
                page.wait_for_timeout(500)  # a late redraw would still be counted
                events = page.evaluate("() => window.__draws")
                charts = {}  # meta -> ["calc 986", "calc 1338"]: each draw, ms from click
                for ev, meta, t in events:
                    charts.setdefault(meta, []).append(f"{ev} {t - t0:.0f}")
                n_runs = page.evaluate("() => window.__runs")
                print(
                    f"{how:8s} {seconds:5.2f} s · {n_runs} run(s) · "
                    + " · ".join(f"{m}: {', '.join(d)}" for m, d in charts.items())
                )


def timeline(app_dir: Path, runs: int) -> None:
    """Print, per cached example open, the events of TIMELINE and IFRAME_TIMES in time order."""
    with served_page(app_dir) as (page, url):
        open_example(page, url)  # the prediction, once
        for _ in range(runs):
            page.goto(url)
            button = page.locator(".st-key-example button").first
            button.wait_for()
            page.wait_for_timeout(300)
            page.evaluate(TIMELINE)
            button.click()
            page.wait_for_function(FULL)
            record = page.evaluate("() => window.__timeline")
            frame = next(f for f in page.frames if "qfitlatent_viewer" in (f.url or ""))
            events = record["events"] + frame.evaluate(IFRAME_TIMES, record["t0"])
            print("  ·  ".join(f"{e[0]} {e[1]}" + (f" (draw {e[2]})" if len(e) > 2 else "")
                               for e in sorted(events, key=lambda e: e[1])))  # fmt: skip


def measure(app_dir: Path, runs: int, structure: Path | None) -> list[tuple[str, list[float]]]:
    """[(what, seconds per run)] for one checkout: its own server and browser."""
    rows = []
    with served_page(app_dir) as (page, url):
        cold = open_example(page, url)
        rows.append(("example → full page, first (predicts)", [cold]))
        rows.append(("example → full page, cached prediction",
                     [open_example(page, url) for _ in range(runs)]))  # fmt: skip
        for how in ("table", "profile", "box"):
            what = {"table": "table click", "profile": "profile click", "box": "residue box"}
            rows.append((f"residue change ({what[how]}), example",
                         [change_residue(page, how, k) for k in range(runs)]))  # fmt: skip
        if structure:
            page.goto(url)
            page.wait_for_selector('[data-testid="stFileUploaderDropzoneInput"]', state="attached")
            t0 = time.perf_counter()
            page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(
                str(structure)
            )
            page.wait_for_function(CIRCLE_TITLE)
            page.wait_for_function(FULL)
            rows.append((f"upload → full page, {structure.name}", [time.perf_counter() - t0]))
            rows.append((f"residue change (table click), {structure.name}",
                         [change_residue(page, "table", k) for k in range(runs)]))  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--app-dir", type=Path, default=ROOT, help="checkout whose app.py runs")
    ap.add_argument("--compare", type=Path, help="a second checkout, measured after the first")
    ap.add_argument("--runs", type=int, default=5, help="measurements per quantity (median)")
    ap.add_argument("--structure", type=Path, help="also time residue changes on this upload")
    ap.add_argument("--timeline", action="store_true", help="where a cached example open goes")
    ap.add_argument("--draws", action="store_true", help="chart draws per residue change")
    args = ap.parse_args()
    if args.draws:
        print(f"load average (1 min): {os.getloadavg()[0]:.1f}")
        draws(args.app_dir, args.runs)
        return
    if args.timeline:
        print(f"load average (1 min): {os.getloadavg()[0]:.1f}; ms from the click")
        timeline(args.app_dir, args.runs)
        return
    load = [os.getloadavg()[0]]
    this = measure(args.app_dir, args.runs, args.structure)
    load.append(os.getloadavg()[0])
    other = measure(args.compare, args.runs, args.structure) if args.compare else None
    load.append(os.getloadavg()[0])
    print(f"\napp: {args.app_dir.resolve()}" + (f"  ·  compared: {args.compare.resolve()}"
          if args.compare else "") + "  ·  load average (1 min) at start, between, end: "
          + ", ".join(f"{x:.1f}" for x in load))  # fmt: skip
    if other is None:
        print(f"| {'what':<52} | median (s) | runs (s) |")
        print(f"|{'-' * 54}|-----------:|----------|")
        for what, times in this:
            runs = ", ".join(f"{t:.1f}" for t in times)
            print(f"| {what:<52} | {statistics.median(times):10.1f} | {runs} |")
        return
    print(f"| {'what':<52} | this (s) | compared (s) | compared / this | runs, this (s) |")
    print(f"|{'-' * 54}|---------:|-------------:|----------------:|----------------|")
    for (what, times), (_, old) in zip(this, other, strict=True):
        new_m, old_m = statistics.median(times), statistics.median(old)
        runs = ", ".join(f"{t:.1f}" for t in times)
        print(f"| {what:<52} | {new_m:8.2f} | {old_m:12.2f} | {old_m / new_m:14.1f}× | {runs} |")


if __name__ == "__main__":
    main()
