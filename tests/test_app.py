"""Both pages headless with streamlit's AppTest: example, residue selection, plots, viewer HTML,
downloads, bad uploads, and a real (tiny) fine-tune launched from the training page.

A tiny untrained checkpoint stands in for the shipped weights (QFITLATENT_WEIGHTS), and runs go
to a temporary QFITLATENT_RUNS, so nothing here depends on or touches the real model or runs.
"""

import gzip
import json
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import flex_table, tiny_app_env
from streamlit.testing.v1 import AppTest

from qfitlatent.server_config import load as server_settings
from qfitlatent.train import jobs

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120  # the first run imports torch and predicts on 2 shared cores
EXAMPLE = ROOT / "qfitlatent" / "data" / "3k0n_qfit.pdb.gz"
MAX_BYTES = server_settings().max_mb * 2**20  # the reader's limit, uncompressed


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("app")
    with tiny_app_env(tmp):
        yield tmp


def app(env) -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()


@pytest.fixture(scope="module")
def example(env):
    at = app(env)
    assert not at.exception
    at.button(key="example").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def component_args(at, name: str) -> dict:
    """What the page sent its component `name`: "viewer" (viz.viewer.Scene.message())."""
    return next(json.loads(c.proto.json_args) for c in at.get("component_instance")
                if c.proto.component_name.endswith(f"qfitlatent_{name}"))  # fmt: skip


def figures(at) -> list[dict]:
    """Every plotly figure of the page: its charts, then its plots components' (the chain
    overview, the profile, the χ figures)."""
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    shown = [json.loads(c.proto.json_args)["figures"] for c in at.get("component_instance")
             if c.proto.component_name.endswith("qfitlatent_plots")]  # fmt: skip
    return charts + [json.loads(text) for figs in shown for _, text in figs]


def chart_traces(at) -> list[int]:
    return [len(f["data"]) for f in figures(at)]


def chart(at, meta: str) -> dict:
    """The plotly figure named `meta` in its layout: "chi-circles", "torus" or "profile"."""
    return next(f for f in figures(at) if f["layout"].get("meta") == meta)


class _Tables(HTMLParser):
    """The tables and big numbers of the residue summary (viz/summary.py), read back from its
    HTML by the standard library's parser: [[{column: cell}]] and {label: value}."""

    def __init__(self):
        super().__init__()
        self.tables, self.metrics, self.cell, self.row, self.klass = [], {}, None, None, []

    def handle_starttag(self, tag, attrs):
        self.klass.append(dict(attrs).get("class", ""))
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.row = []
        elif tag in ("td", "th") or self.klass[-1] in ("l", "v"):
            self.cell = ""

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data

    def handle_endtag(self, tag):
        klass = self.klass.pop()
        if tag in ("td", "th"):
            self.row.append(self.cell)
            self.cell = None
        elif tag == "tr":
            self.tables[-1].append(self.row)
        elif klass == "l":
            self.label, self.cell = self.cell, None
        elif klass == "v":
            self.metrics[self.label], self.cell = self.cell, None


def _summary(at) -> _Tables:
    (html,) = [h.proto.body for h in at.get("html") if "qfl-metrics" in h.proto.body]
    parser = _Tables()
    parser.feed(html)
    return parser


def summary_tables(at) -> list[list[dict]]:
    return [[dict(zip(t[0], r, strict=True)) for r in t[1:]] for t in _summary(at).tables]


def summary_metrics(at) -> dict[str, str]:
    return _summary(at).metrics


def viewer_args(at) -> dict:
    """What the page sent its viewer component: viz.viewer.Scene.message()."""
    return component_args(at, "viewer")


def residue_box(at):
    return next(s for s in at.selectbox if s.key and s.key.startswith("residue:"))


def test_landing_page_asks_for_a_structure(env):
    at = app(env)
    assert not at.exception and not at.error
    assert any("Open a bundled example" in i.value for i in at.info)


def test_example_predicts_and_draws(example):
    assert not example.error
    # χ circles, the χ1–χ2 torus where the first residue has ≥ 2 χ, and the profile.
    traces = chart_traces(example)
    n_chi = int(flex_table(example).n_chi[0])
    assert len(traces) == (3 if n_chi >= 2 else 2) and min(traces) > 0
    scene = viewer_args(example)
    assert scene["js_url"] == "/app/static/3Dmol-min.js"  # the app's own copy: works offline
    assert "ATOM" in scene["base"]  # the structure, then predicted + observed conformers
    assert sum(name == "addModel" for name, _ in scene["calls"]) >= 2
    # Input conformers of the residue, what the multiconformer model did with it (report rows,
    # or the selector's proposals where it was not split); the flexibility table is a component.
    observed, predicted = summary_tables(example)
    assert observed and {"input", "occ", "χ1"} <= set(observed[0])
    if "status" in predicted[0]:  # the report's rows (they carry a mass column too)
        assert {"status", "source", "mass", "note"} <= set(predicted[0])
    else:  # the selector's proposals
        assert sum(float(r["mass"]) for r in predicted) <= 1.0 + 1e-6
    metrics = summary_metrics(example)
    assert list(metrics) == ["flexibility", "entropy / χ", "χ1 spread", "altlocs"]
    assert float(metrics["flexibility"]) == pytest.approx(
        flex_table(example).flexibility[0], abs=0.006
    )
    table = flex_table(example)
    assert list(table.residue) == residue_box(example).options
    assert list(table.flexibility) == sorted(table.flexibility, reverse=True)  # default sort
    assert any("residues split" in m.value for m in example.markdown)
    assert {d.proto.label for d in example.get("download_button")} == {
        f"3k0n_qfit_{name}"
        for name in (
            "multiconformer.pdb",
            "multiconformer.cif",
            "samples.pdb",
            "samples.cif",
            "report.csv",
            "residues.csv",
            "mixture.json",
        )
    }


def test_viewer_scene_is_stable_across_reruns(example):
    before = viewer_args(example)
    example.run()
    # The same scene: nothing to redraw, and the structure's text, which the viewer holds since
    # the run before, is not sent again (tests/test_viewer_text.py: when it is).
    assert viewer_args(example) == {**before, "base": None}


def test_selecting_a_residue_updates_plots_and_viewer(example):
    box = residue_box(example)
    target = next(o for o in box.options if o.endswith(" PHE"))  # a π-symmetric χ2
    box.set_value(target).run()
    assert not example.exception
    circle = chart(example, "chi-circles")
    assert any(target in a["text"] for a in circle["layout"]["annotations"])  # the title
    assert any("π-symmetric" in a["text"] for a in circle["layout"]["annotations"])
    assert any("CA–CB–CG–CD1" in a["text"] for a in circle["layout"]["annotations"])
    chain, resnum = target[0], int(target.split()[0][1:])
    scene = viewer_args(example)
    assert scene["focus"][:2] == [chain, resnum]
    centre = {"model": 0, "chain": chain, "resi": resnum, "icode": " "}  # exact: no 69A with 69
    assert ["center", [centre]] in scene["calls"]


def table_click(at, row: int) -> None:
    """What a click on a row of the table component sends (viz/table_component): the row's
    position in the rows as sent and a count of the clicks in that view."""
    key = "table:" + residue_box(at).key.split(":", 1)[1]
    count = (at.session_state[key] or {}).get("click", 0) if key in at.session_state else 0
    at.session_state[key] = {"row": row, "click": count + 1, "view": "test", "ask": None}
    at.run()


def table_args(at) -> dict:
    return component_args(at, "table")


def test_table_row_click_selects_the_residue_and_the_table_marks_it(example):
    table = flex_table(example)
    table_click(example, 4)  # the fifth row as sent (most flexible first), however it is sorted
    assert not example.exception
    box = residue_box(example)
    assert box.value == box.options[4] == table.residue[4]
    assert table_args(example)["selected"] == 4
    # A residue chosen elsewhere (the box) is the one the table marks.
    box.set_value(box.options[9]).run()
    assert table_args(example)["selected"] == 9
    # The same row clicked again is a new choice: it shows that residue again.
    table_click(example, 4)
    assert residue_box(example).value == box.options[4]


def test_the_table_rows_are_sent_once_and_again_when_asked(example):
    example.run()
    first = table_args(example)
    assert first["rows"] is None  # the component holds them since an earlier run
    residue_box(example).set_value(residue_box(example).options[2]).run()
    assert table_args(example)["rows"] is None and table_args(example)["hash"] == first["hash"]
    # A new iframe (a rebuilt one) asks: the rows are sent, once.
    key = "table:" + residue_box(example).key.split(":", 1)[1]
    example.session_state[key] = {"ask": "iframe-2:1", "hash": first["hash"]}
    example.run()
    again = table_args(example)
    assert again["rows"] is not None and len(again["rows"]) == len(residue_box(example).options)
    example.run()
    assert table_args(example)["rows"] is None
    # A click from that iframe carries its last request along (table.js): not a new request,
    # so nothing is sent again.
    example.session_state[key] = {"row": 3, "click": 1, "view": "iframe-2", "ask": "iframe-2:1"}
    example.run()
    assert table_args(example)["rows"] is None
    assert residue_box(example).value == residue_box(example).options[3]


def click(at, key: str, customdata: list) -> None:
    """What a click on a point of the plots component `key` sends (viz/plots_component): its
    customdata and a count of the clicks in that view."""
    count = (at.session_state[key] or {}).get("click", 0) if key in at.session_state else 0
    at.session_state[key] = {"figure": key, "customdata": customdata, "click": count + 1,
                             "view": "test"}  # fmt: skip
    at.run()


def test_profile_click_selects_the_residue(example):
    box = residue_box(example)
    target = box.options[7]
    points = chart(example, "profile")["data"][0]["customdata"]
    index = next(c[0] for c in points if c[1] == target) if any(
        c[1] == target for c in points) else None  # fmt: skip
    assert index is not None  # the profile's first track (chain A) holds every residue here
    click(example, "profile", [index, target])
    assert not example.exception
    assert residue_box(example).value == target
    assert any(target in a["text"] for a in chart(example, "chi-circles")["layout"]["annotations"])
    # Another residue chosen in the box, then the same bar clicked again: shown again.
    residue_box(example).set_value(box.options[3]).run()
    click(example, "profile", [index, target])
    assert residue_box(example).value == target
    # A rerun with no new click (a display setting) leaves the box where the user put it.
    residue_box(example).set_value(box.options[3]).run()
    example.toggle(key="flex_colour").set_value(False).run()
    assert residue_box(example).value == box.options[3]
    example.toggle(key="flex_colour").set_value(True).run()


def profile_args(at) -> str:
    return next(c.proto.json_args for c in at.get("component_instance")
                if c.proto.component_name.endswith("qfitlatent_plots")
                and json.loads(c.proto.json_args)["figures"][0][0] == "profile")  # fmt: skip


def test_the_profile_stays_the_same_figure_across_residues(example):
    """The profile marks no residue, so a residue chosen anywhere sends it unchanged (the
    browser does not draw it again); before, a residue chosen in the box or table after a bar
    click made a new chart to clear the bar's selection."""
    box = residue_box(example)
    before = profile_args(example)
    residue_box(example).set_value(box.options[3]).run()
    target = box.options[5]
    index = next(c[0] for c in chart(example, "profile")["data"][0]["customdata"] if c[1] == target)
    click(example, "profile", [index, target])
    assert residue_box(example).value == target
    residue_box(example).set_value(box.options[3]).run()
    assert not example.exception
    assert profile_args(example) == before
    assert chart(example, "profile")["layout"]["clickmode"] == "event"  # nothing stays selected


def test_unseen_example_opens_and_says_it_is_unseen(env):
    at = app(env)
    at.button(key="example_unseen").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("held out of every training run" in s.value for s in at.success)
    assert any(m.value.startswith("**1atg**") and "· 1.20 Å ·" in m.value for m in at.markdown)
    at.button(key="example").click().run()
    assert any("training structure" in w.value for w in at.warning)
    # qFit writes no REMARK 2: the page says so rather than inventing a number.
    assert any("no resolution in the header" in m.value for m in at.markdown)


def test_single_chi_residue_has_no_torus(example):
    box = residue_box(example)
    box.set_value(next(o for o in box.options if o.endswith(" SER"))).run()
    assert len(chart_traces(example)) == 2  # χ circle and profile only


def test_uploaded_structure_is_read_and_remarks_never_reach_the_viewer(env):
    text = gzip.decompress(EXAMPLE.read_bytes()).decode()
    evil = "REMARK   1 </script><script>alert('x')</script>\n" + text
    at = app(env)
    at.file_uploader(key="upload").set_value(("evil.pdb", evil.encode(), "chemical/x-pdb")).run()
    assert not at.exception and not at.error
    scene = json.dumps(viewer_args(at))
    assert "alert(" not in scene and "REMARK" not in scene


def no_protein_pdb() -> bytes:
    lines = [
        f"HETATM{i:5d}  O   HOH W{i:4d}    {i:8.3f}{0:8.3f}{0:8.3f}  1.00 10.00           O"
        for i in range(1, 30)
    ]
    return ("\n".join(lines) + "\nEND\n").encode()


@pytest.mark.parametrize(
    "name, data, expect",
    [
        ("notes.pdb", b"these are my lab notes, not coordinates\n" * 20, "cannot be used"),
        ("empty.pdb", b"", "empty"),
        ("water.pdb", no_protein_pdb(), "cannot be used"),
        ("huge.pdb", b"REMARK 999 padding\n" * (MAX_BYTES // 19 + 10), "larger than"),
        ("picture.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40, "binary"),
    ],
    ids=["not-a-structure", "empty", "no-protein", "oversize", "binary"],
)
def test_bad_uploads_show_an_error_and_the_app_keeps_working(env, name, data, expect):
    at = app(env)
    at.file_uploader(key="upload").set_value((name, data, "application/octet-stream")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.error and expect in at.error[0].value, [e.value for e in at.error]
    assert not figures(at)
    at.button(key="example").click().run()  # still usable afterwards
    assert not at.exception and not at.error and figures(at)


def test_train_page_runs_a_tiny_fine_tune_that_appears_in_the_model_choice(env):
    at = AppTest.from_file(str(ROOT / "pages" / "1_Train.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    sample = sorted((ROOT / "qfitlatent" / "data" / "train_sample").glob("*.pdb.gz"))[:2]
    at.radio(key="data_kind").set_value("upload structures or a .zip").run()  # its inputs appear
    at.file_uploader(key="train_upload").set_value(
        [(p.name, p.read_bytes(), "application/gzip") for p in sample]
    )
    at.text_input(key="run_name").set_value("tiny run")
    at.number_input(key="epochs").set_value(1)
    at.selectbox(key="init").set_value("from scratch (random initialisation)")
    at.text_input(key="extra").set_value("n_blocks=1 d_s=16 d_z=8 crop_size=96")
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    run_dir = jobs.runs_root() / "tiny-run"
    assert sorted(p.name for p in (run_dir / "data").iterdir()) == [p.name for p in sample]
    assert any("Running: tiny-run" in h.value for h in at.subheader)
    deadline = time.time() + 150
    while jobs.load_job(run_dir).active and time.time() < deadline:
        time.sleep(0.5)
    job = jobs.load_job(run_dir)
    assert job.status == "finished", jobs.log_tail(job)
    at.run()  # what a visitor sees after the run: no live panel, the run listed as finished
    assert not at.exception
    assert not any(h.value.startswith("Running") for h in at.subheader)
    listed = at.dataframe[0].value
    assert listed.loc[listed.run == "tiny-run", "status"].item().endswith("finished")
    # Trained on uploads: a model choice for the session that launched it, no one else.
    main = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    main.session_state["owner_token"] = at.session_state["owner_token"]
    assert "fine-tune: tiny-run" in main.run().selectbox(key="weights").options
    assert "fine-tune: tiny-run" not in app(env).selectbox(key="weights").options


def test_train_page_refuses_bad_settings_without_launching(env):
    at = AppTest.from_file(str(ROOT / "pages" / "1_Train.py"), default_timeout=TIMEOUT).run()
    at.text_input(key="run_name").set_value("../escape")
    next(b for b in at.button if b.label == "Start training").click().run()
    assert at.error and "not allowed" in at.error[0].value
    at.text_input(key="run_name").set_value("ok-name")
    at.text_input(key="extra").set_value("no_such_setting=3")
    next(b for b in at.button if b.label == "Start training").click().run()
    assert at.error and "unknown setting" in at.error[0].value
    assert not (jobs.runs_root() / "ok-name").exists()


def test_without_any_model_the_page_says_how_to_get_one(env, tmp_path, monkeypatch):
    monkeypatch.setenv("QFITLATENT_WEIGHTS", str(tmp_path / "missing.pt"))
    monkeypatch.setenv("QFITLATENT_RUNS", str(tmp_path / "no-runs"))
    at = app(env)
    assert not at.exception
    assert at.warning and "No model weights" in at.warning[0].value


def test_a_broken_checkpoint_shows_an_error_not_a_traceback(env, tmp_path, monkeypatch):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    monkeypatch.setenv("QFITLATENT_WEIGHTS", str(broken))
    at = app(env)
    at.button(key="example").click().run()
    assert not at.exception
    assert at.error and "cannot be loaded" in at.error[0].value


def test_the_latest_choice_of_structure_wins(env):
    other = ROOT / "qfitlatent" / "data" / "train_sample" / "2ppn.pdb.gz"
    at = app(env)
    at.file_uploader(key="upload").set_value((other.name, other.read_bytes(), "application/gzip"))
    at.run()
    assert any(m.value.startswith("**2ppn**") for m in at.markdown)
    at.button(key="example").click().run()  # the upload stays in the box, the example shows
    assert any(m.value.startswith("**3k0n_qfit**") for m in at.markdown)
    at.file_uploader(key="upload").set_value((other.name, other.read_bytes(), "application/gzip"))
    at.run()  # a new upload replaces the example
    assert any(m.value.startswith("**2ppn**") for m in at.markdown)


@pytest.mark.parametrize("which", ["shipped", "fine-tune"])
def test_downloads_are_the_files_the_command_line_writes(env, tmp_path, which):
    """Byte for byte, by one function, for the default weights and for a fine-tune's best.pt
    (whose name alone does not say which run made it)."""
    import shutil

    from qfitlatent import ui
    from qfitlatent.cli import main

    path = ROOT / "qfitlatent" / "data" / "train_sample" / "2ppn.pdb.gz"
    weights = ui.default_weights()
    if which == "fine-tune":
        run = tmp_path / "runs" / "lysozyme-ft"
        run.mkdir(parents=True)
        weights = Path(shutil.copy(weights, run / "best.pt"))
    # Non-default multiconformer settings, given to the page's function and to the command.
    result = ui.predict_cached(path.read_bytes(), path.name, weights, n_samples=10,
                               seed=0, temperature=1.0, threshold=0.2, max_conformers=2,
                               input_altlocs="replace")  # fmt: skip
    out = tmp_path / "out"
    assert main(["predict", str(path), "--weights", str(weights), "--out", str(out),
                 "--device", "auto", "--threshold", "0.2", "--max-conformers", "2",
                 "--input-altlocs", "replace"]) == 0  # fmt: skip
    written = {p.name: p.read_bytes() for p in (out / "2ppn").iterdir()}
    assert result.downloads == written and len(written) == 7
    settings = json.loads(written["2ppn_mixture.json"])["multiconformer"]["settings"]
    assert settings["threshold"] == 0.2 and settings["max_conformers"] == 2
    named = json.loads(written["2ppn_mixture.json"])["weights"]
    assert named == ("lysozyme-ft/best.pt" if which == "fine-tune" else weights.name)


def test_an_unexpected_failure_is_reported_in_the_page(env, monkeypatch):
    from qfitlatent import predict

    def broken(*args, **kwargs):
        raise RuntimeError("featurize choked")

    monkeypatch.setattr(predict, "predict", broken)
    path = ROOT / "qfitlatent" / "data" / "train_sample" / "1unq.pdb.gz"
    at = app(env)
    at.file_uploader(key="upload").set_value((path.name, path.read_bytes(), "application/gzip"))
    at.run()
    assert not at.exception
    assert at.error and "featurize choked" in at.error[0].value


def test_a_running_job_is_seen_by_a_new_visitor_read_only_and_stopped_by_its_owner(
    env, monkeypatch
):
    import sys

    # A stand-in trainer that just waits: this test is about the page, not about training.
    monkeypatch.setattr(
        jobs, "train_command", lambda *a, **k: [sys.executable, "-c", "import time; time.sleep(60)"]
    )
    first = AppTest.from_file(str(ROOT / "pages" / "1_Train.py"), default_timeout=TIMEOUT).run()
    first.text_input(key="run_name").set_value("to-stop")
    next(b for b in first.button if b.label == "Start training").click().run()
    assert not first.error, [e.value for e in first.error]
    visitor = AppTest.from_file(str(ROOT / "pages" / "1_Train.py"), default_timeout=TIMEOUT).run()
    assert any(h.value == "Running: to-stop" for h in visitor.subheader)
    start = next(b for b in visitor.button if b.label == "Start training")
    assert start.disabled  # one run at a time
    # A second session gets no Stop button, and the function refuses its token too.
    assert not [b for b in visitor.button if b.key == "stop"]
    assert any("another visitor" in c.value for c in visitor.caption)
    run_dir = jobs.runs_root() / "to-stop"
    with pytest.raises(PermissionError):
        jobs.stop(jobs.load_job(run_dir), token=visitor.session_state["owner_token"])
    assert jobs.load_job(run_dir).active and not jobs.load_job(run_dir).stop_requested
    first.run()
    first.button(key="stop").click().run()
    deadline = time.time() + 30
    while jobs.load_job(run_dir).active and time.time() < deadline:
        time.sleep(0.2)
    assert jobs.load_job(run_dir).status == "stopped"
    # The owner may delete the ended run; the visitor is not offered it.
    first.run()
    visitor.run()
    assert first.selectbox(key="detail").value == "to-stop"
    assert not [b for b in visitor.button if b.key == "delete"]
    first.button(key="delete").click().run()
    assert not first.exception and not run_dir.exists()


def test_details_follow_the_run_that_just_ended(env, monkeypatch):
    import sys

    monkeypatch.setattr(jobs, "train_command", lambda *a, **k: [sys.executable, "-c", "pass"])
    at = AppTest.from_file(str(ROOT / "pages" / "1_Train.py"), default_timeout=TIMEOUT).run()
    for name in ("first-of-two", "second-of-two"):
        at.text_input(key="run_name").set_value(name)
        next(b for b in at.button if b.label == "Start training").click().run()
        assert not at.error, [e.value for e in at.error]
        deadline = time.time() + 30
        while jobs.load_job(jobs.runs_root() / name).active and time.time() < deadline:
            time.sleep(0.1)
        at.run()
        assert at.selectbox(key="detail").value == name  # not the run before it


def test_train_page_hides_server_folders_unless_the_operator_allows_some(
    env, tmp_path, monkeypatch
):
    at = AppTest.from_file(str(ROOT / "pages" / "1_Train.py"), default_timeout=TIMEOUT).run()
    assert "folder on this server" not in at.radio(key="data_kind").options
    assert not [t for t in at.text_input if t.key == "folder"]
    allowed = tmp_path / "allowed"
    (allowed / "set").mkdir(parents=True)
    monkeypatch.setenv("QFITLATENT_DATA_ROOTS", str(allowed))
    at = AppTest.from_file(str(ROOT / "pages" / "1_Train.py"), default_timeout=TIMEOUT).run()
    at.radio(key="data_kind").set_value("folder on this server").run()
    errors = []
    for outside in ("/etc", "/no/such/folder", str(allowed / ".." / "allowed-not")):
        at.text_input(key="folder").set_value(outside)
        at.text_input(key="run_name").set_value("probe")
        next(b for b in at.button if b.label == "Start training").click().run()
        assert not at.exception
        errors.append(at.error[0].value.replace(repr(outside), "PATH"))
    assert len(set(errors)) == 1 and "not a folder under the allowed" in errors[0]
    assert not (jobs.runs_root() / "probe").exists()


@pytest.mark.parametrize(
    "extra, expect",
    [
        ("save_every=0", "save_every"),
        ("log_every=0", "log_every"),
        ("n_blocks=0", "n_blocks"),
        ("crop_size=0", "crop_size"),
        ("lr=nan", "lr"),
        ("dropout=abc", "dropout"),
    ],
)
def test_train_page_refuses_out_of_range_settings(env, extra, expect):
    at = AppTest.from_file(str(ROOT / "pages" / "1_Train.py"), default_timeout=TIMEOUT).run()
    at.text_input(key="run_name").set_value("bad-setting")
    at.text_input(key="extra").set_value(extra)
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception
    assert at.error and expect in at.error[0].value, [e.value for e in at.error]
    assert not (jobs.runs_root() / "bad-setting").exists()


def test_a_malformed_zip_is_a_message_and_the_name_stays_usable(env, monkeypatch):
    import sys

    monkeypatch.setattr(jobs, "train_command", lambda *a, **k: [sys.executable, "-c", "pass"])
    at = AppTest.from_file(str(ROOT / "pages" / "1_Train.py"), default_timeout=TIMEOUT).run()
    at.radio(key="data_kind").set_value("upload structures or a .zip").run()
    at.file_uploader(key="train_upload").set_value(
        [("set.zip", b"PK\x03\x04 this is not really a zip", "application/zip")]
    )
    at.text_input(key="run_name").set_value("zip-run")
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception
    assert at.error and "not a readable zip" in at.error[0].value
    assert not (jobs.runs_root() / "zip-run").exists()
    assert jobs.lock_holder() is None
    sample = ROOT / "qfitlatent" / "data" / "train_sample" / "2ppn.pdb.gz"
    at.file_uploader(key="train_upload").set_value(
        [(sample.name, sample.read_bytes(), "application/gzip")]
    )
    at.text_input(key="run_name").set_value("zip-run")
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.error, [e.value for e in at.error]
    assert (jobs.runs_root() / "zip-run" / "data" / sample.name).is_file()
    deadline = time.time() + 30
    while jobs.load_job(jobs.runs_root() / "zip-run").active and time.time() < deadline:
        time.sleep(0.1)


def test_train_page_shows_only_the_chosen_sources_inputs(env):
    at = AppTest.from_file(str(ROOT / "pages" / "1_Train.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    assert at.radio(key="data_kind").value.startswith("bundled")
    assert not at.get("file_uploader")  # no upload box for the bundled sample
    assert not [t for t in at.text_input if t.key == "folder"]
    at.radio(key="data_kind").set_value(at.radio(key="data_kind").options[1]).run()
    assert [u for u in at.get("file_uploader") if u.proto.label.startswith("Structures")]
    helps = {w.label: w.help for w in (*at.number_input, *at.selectbox, *at.checkbox)}
    assert all(helps[k] for k in ("Epochs", "Learning rate", "Start from"))


@pytest.fixture
def calls(monkeypatch) -> list[int]:
    """The seed of every prediction the page makes from here on (predict.predict, counted)."""
    from qfitlatent import predict

    seen, real = [], predict.predict

    def counted(*args, **kwargs):
        seen.append(kwargs["seed"])
        return real(*args, **kwargs)

    monkeypatch.setattr(predict, "predict", counted)
    return seen


def test_prediction_settings_wait_for_apply_and_display_settings_do_not(env, calls):
    """Settings that change the prediction sit in a form: moved, nothing is predicted until
    Apply, whose label says it recomputes (before, each one predicted again at once). Display
    settings never predict."""
    at = app(env)
    at.button(key="example").click().run()
    before = len(calls)  # 0 when an earlier test kept the example's prediction
    at.toggle(key="whole").set_value(True).run()
    at.slider(key="top_n").set_value(3).run()
    assert len(calls) == before and not at.exception
    at.number_input(key="seed").set_value(7).run()
    assert len(calls) == before  # not yet: the form waits
    assert any("change the prediction" in c.value for c in at.sidebar.caption)
    at.number_input(key="seed").set_value(7)
    apply = next(b for b in at.get("form_submit_button") if "recompute" in b.proto.label)
    apply.click().run()
    assert calls[before:] == [7] and not at.exception


def test_a_visit_to_the_train_page_keeps_the_upload_settings_and_residue(env, calls):
    """Streamlit forgets the state of widgets a page does not draw: back from Train, the upload
    was gone (the start box again), and every setting and the residue were back to their
    defaults; with other prediction settings that was also a new prediction."""
    at = app(env)
    at.file_uploader(key="upload").set_value(
        ("mine.pdb.gz", (ROOT / "qfitlatent/data/3k0n_single.pdb.gz").read_bytes(),
         "application/gzip")).run()  # fmt: skip
    at.number_input(key="seed").set_value(5)
    next(b for b in at.get("form_submit_button") if "recompute" in b.proto.label).click().run()
    box = residue_box(at)
    box.set_value(box.options[6]).run()
    at.toggle(key="whole").set_value(True).run()
    at.slider(key="top_n").set_value(2).run()
    before = (len(calls), residue_box(at).value, viewer_args(at)["focus"])
    assert not at.exception and calls[-1] == 5

    at.switch_page("pages/1_Train.py").run()
    at.radio(key="data_kind").set_value("upload structures or a .zip").run()
    at.switch_page("app.py").run()
    assert not at.exception and not at.info  # not the start box: the structure is there
    assert any(m.value.startswith("**mine**") for m in at.markdown)
    assert at.number_input(key="seed").value == 5 and at.toggle(key="whole").value
    assert at.slider(key="top_n").value == 2
    assert (len(calls), residue_box(at).value, viewer_args(at)["focus"]) == before  # no new one
    assert any("In use: your structure **mine.pdb.gz**" in c.value for c in at.sidebar.caption)
    at.switch_page("pages/1_Train.py").run()
    assert at.radio(key="data_kind").value == "upload structures or a .zip"  # kept there too
    # The kept upload can be removed: the start box again.
    at.switch_page("app.py").run()
    at.button(key="upload:forget").click().run()
    assert any("Open a bundled example" in i.value for i in at.info)


MANY_CHAINS = "3cyq.pdb.gz"  # 16 protein chains, 2,123 residues


@pytest.fixture(scope="module")
def many_chains(env):
    from conftest import data_file

    path = data_file(MANY_CHAINS)
    at = app(env)
    at.file_uploader(key="upload").set_value((path.name, path.read_bytes(), "chemical/x-pdb"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def profile_tracks(spec: dict) -> list[str]:
    """The chain of each track of a profile figure, top to bottom ("chain A" → "A")."""
    axes = sorted((k for k in spec["layout"] if k.startswith("yaxis")), key=lambda k: int(
        k[5:] or 1))  # fmt: skip
    return [spec["layout"][k]["title"]["text"].split()[-1] for k in axes]


def test_a_structure_of_many_chains_shows_the_ten_most_flexible_and_an_overview(many_chains):
    """16 chains drew 16 flat tracks. Now: one overview row per chain, the tracks of the ten
    with the most expected flexible residues, and a multiselect that changes them."""
    from qfitlatent import display, ui

    at = many_chains
    overview = chart(at, "chain-overview")
    rows = overview["data"][0]
    box = next(m for m in at.multiselect if m.key.startswith("chains:"))
    assert len(box.options) == 16 and len(box.value) == ui.PROFILE_CHAINS
    assert [y.split()[-1] for y in rows["y"]] == box.options  # file order, one row each
    # The default is what the overview's bars say: the ten longest bars.
    expected = dict(zip([y.split()[-1] for y in rows["y"]], rows["x"], strict=True))
    longest = sorted(expected, key=lambda c: -expected[c])[: ui.PROFILE_CHAINS]
    assert set(box.value) == set(longest)
    assert profile_tracks(chart(at, "profile")) == list(box.value)
    assert display.most_flexible_chains([{"chain": c, "expected": e} for c, e in
                                         expected.items()], 3) == [c for c in expected if c in
                                                                   longest[:3]]  # fmt: skip
    hidden = next(c for c in box.options if c not in box.value)
    box.set_value([*box.value[:2], hidden]).run()
    assert not at.exception
    assert profile_tracks(chart(at, "profile")) == [c for c in box.options if c in
                                                    {*box.value}]  # fmt: skip
    assert len(profile_tracks(chart(at, "profile"))) == 3


def test_a_click_on_a_chain_of_the_overview_shows_or_hides_its_track(many_chains):
    at = many_chains
    box = next(m for m in at.multiselect if m.key.startswith("chains:"))
    shown = list(box.value)
    hidden = next(c for c in box.options if c not in shown)
    click(at, "chain-overview", [hidden])
    assert not at.exception
    tracks = profile_tracks(chart(at, "profile"))
    assert hidden in tracks and set(tracks) == {*shown, hidden}
    click(at, "chain-overview", [hidden])
    assert set(profile_tracks(chart(at, "profile"))) == set(shown)


def test_a_structure_of_ten_chains_or_fewer_draws_every_track_and_no_overview(example):
    assert not [m for m in example.multiselect if m.key and m.key.startswith("chains:")]
    assert not any(f["layout"].get("meta") == "chain-overview" for f in figures(example))
    assert profile_tracks(chart(example, "profile")) == ["A"]
