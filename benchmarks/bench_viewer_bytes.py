"""What a residue change sends the browser: bytes from the server per change, in the viewer's
neighbourhood mode (default) and whole-structure mode, and whether the structure's text went
with the viewer's scene.

    python benchmarks/bench_viewer_bytes.py --structure ../shared/data/pretrain/2qjy.pdb.gz
    python benchmarks/bench_viewer_bytes.py --structure FILE --compare /tmp/old   # side by side

Starts `streamlit run app.py` from --app-dir (and --compare) on a free port with Debian's
chromium through Playwright (bench_app_browser's server and residue change), uploads the
structure once, then for each mode makes --runs residue changes in the residue box and records
every websocket frame the server sends (Playwright's framereceived) from the choice to the full
page. "viewer frame" is the frame holding the viewer component's arguments (its "base_hash");
"text sent" counts the changes whose scene carried the structure's text ("base" not null).
Medians of --runs (default 5).
"""

import argparse
import statistics
from pathlib import Path

from bench_app_browser import FULL, PLOTS, ROOT, change_residue, served_page

# Records the script's states from now on; RERAN: one run started and ended since.
WATCH_RUNS = """() => { const app = document.querySelector('[data-testid="stApp"]');
  window.__states = [];
  new MutationObserver(() => window.__states.push(app.dataset.testScriptState))
    .observe(app, {attributes: true, attributeFilter: ['data-test-script-state']}); }"""
RERAN = (
    "() => (window.__states || []).includes('running')"
    " && document.querySelector('[data-testid=\"stApp\"]').dataset.testScriptState"
    " === 'notRunning'"
)


def measure(app_dir: Path, structure: Path, runs: int) -> dict[str, tuple[list, list, int]]:
    """{mode: ([bytes per change], [viewer frame bytes per change], changes with text)}."""
    frames: list[bytes] = []
    out = {}
    with served_page(app_dir) as (page, url):
        page.on("websocket", lambda ws: ws.on("framereceived", lambda p: frames.append(
            p if isinstance(p, bytes) else p.encode())))  # fmt: skip
        page.goto(url)
        page.wait_for_selector('[data-testid="stFileUploaderDropzoneInput"]', state="attached")
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(
            str(structure)
        )
        page.wait_for_function(f"() => {PLOTS}.length >= 2", timeout=900_000)
        page.wait_for_function(FULL, timeout=900_000)
        for mode in ("neighbourhood", "whole"):
            if mode == "whole":
                page.evaluate(WATCH_RUNS)
                page.get_by_text("whole structure (faded)").click()
                page.wait_for_function(RERAN)
                page.wait_for_function(FULL)
            total, scene, with_text = [], [], 0
            for k in range(runs):
                frames.clear()
                change_residue(page, "box", k)
                total.append(sum(len(f) for f in frames))
                viewer = [f for f in frames if b'"base_hash"' in f]
                scene.append(sum(len(f) for f in viewer))
                with_text += any(b'"base": "' in f for f in viewer)
            out[mode] = (total, scene, with_text)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--structure", type=Path, required=True, help="the structure to upload")
    ap.add_argument("--app-dir", type=Path, default=ROOT, help="checkout whose app.py runs")
    ap.add_argument("--compare", type=Path, help="a second checkout, measured after the first")
    ap.add_argument("--runs", type=int, default=5, help="residue changes per mode (median)")
    args = ap.parse_args()
    dirs = [args.app_dir] + ([args.compare] if args.compare else [])
    results = {d: measure(d, args.structure, args.runs) for d in dirs}
    print(f"\n{args.structure.name}: bytes from the server per residue change (median of "
          f"{args.runs}; residue box)")  # fmt: skip
    print(f"{'checkout':<28} {'mode':<14} {'all frames':>12} {'viewer frame':>13} "
          f"{'text sent':>10}")  # fmt: skip
    for d, res in results.items():
        for mode, (total, scene, with_text) in res.items():
            print(
                f"{str(d)[-28:]:<28} {mode:<14} {statistics.median(total):>12,.0f} "
                f"{statistics.median(scene):>13,.0f} {with_text:>5} / {args.runs}"
            )


if __name__ == "__main__":
    main()
