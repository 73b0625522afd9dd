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
- residue change: a click on a row of the flexibility table, until the χ plots show the new
  residue and the viewer and charts are drawn again.
- with --structure, the same residue change on that uploaded structure (opened once).

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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]  # fmt: skip

# Works for the app before and after the layout of issue 13 (title vs first annotation).
CIRCLE_TITLE = """() => { for (const g of document.querySelectorAll('.js-plotly-plot')) {
  const t = (g.layout.title && g.layout.title.text) || '';
  const a = ((g.layout.annotations || [])[0] || {}).text || '';
  for (const s of [t, a]) if (s.includes('predicted χ densities')) return s; }
  return null; }"""
FULL = """() => {
  const w = document.querySelector('[data-testid="stStatusWidget"]');
  if (w && w.innerText.includes('Running')) return false;
  const plots = [...document.querySelectorAll('.js-plotly-plot')];
  if (plots.length < 2 || !plots.every(g => g.querySelector('.main-svg') && (g.data || []).length))
    return false;
  return [...document.querySelectorAll('iframe')].some(f => { try {
    const d = f.contentDocument, c = d && d.readyState === 'complete' && d.querySelector('canvas');
    return c && c.width > 0; } catch (e) { return false; } });
}"""


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


def open_example(page, url) -> float:
    page.goto(url)
    button = page.locator(".st-key-example button").first
    button.wait_for()
    page.wait_for_timeout(300)
    t0 = time.perf_counter()
    button.click()
    page.wait_for_function(FULL)
    return time.perf_counter() - t0


def change_residue(page, row: int) -> float:
    before = page.evaluate(CIRCLE_TITLE)
    grid = page.locator('[data-testid="stDataFrame"]').last
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    t0 = time.perf_counter()
    page.mouse.click(box["x"] + 20, box["y"] + 36 * row + 18)
    # null while the chart is being replaced during the rerun: that is not the new residue yet.
    page.wait_for_function(
        f"() => {{ const t = ({CIRCLE_TITLE})(); return t !== null && t !== {before!r}; }}"
    )
    page.wait_for_function(FULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--app-dir", type=Path, default=ROOT, help="checkout whose app.py runs")
    ap.add_argument("--runs", type=int, default=5, help="measurements per quantity (median)")
    ap.add_argument("--structure", type=Path, help="also time residue changes on this upload")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    log = Path("/tmp") / f"bench_app_{os.getpid()}.log"
    proc, url = start_server(args.app_dir.resolve(), log)
    rows = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.set_default_timeout(300_000)
            cold = open_example(page, url)
            opens = [open_example(page, url) for _ in range(args.runs)]
            changes = [change_residue(page, 2 + k % 6) for k in range(args.runs)]
            rows += [("example → full page, first (predicts)", [cold]),
                     ("example → full page, cached prediction", opens),
                     ("residue change (table click), example", changes)]  # fmt: skip
            if args.structure:
                page.goto(url)
                page.wait_for_selector(
                    '[data-testid="stFileUploaderDropzoneInput"]', state="attached"
                )
                t0 = time.perf_counter()
                page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
                    str(args.structure)
                )
                page.wait_for_function(CIRCLE_TITLE)
                page.wait_for_function(FULL)
                rows.append((f"upload → full page, {args.structure.name}",
                             [time.perf_counter() - t0]))  # fmt: skip
                big = [change_residue(page, 2 + k % 6) for k in range(args.runs)]
                rows.append((f"residue change (table click), {args.structure.name}", big))
            browser.close()
    finally:  # what was measured is printed even when a later step fails
        proc.terminate()
        proc.wait(timeout=20)
        print(f"\napp: {args.app_dir.resolve()}  ·  load average {os.getloadavg()[0]:.1f}")
        print(f"| {'what':<52} | median (s) | runs (s) |")
        print(f"|{'-' * 54}|-----------:|----------|")
        for what, times in rows:
            runs = ", ".join(f"{t:.1f}" for t in times)
            print(f"| {what:<52} | {statistics.median(times):10.1f} | {runs} |")


if __name__ == "__main__":
    main()
