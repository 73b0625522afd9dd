"""The Train page at the operator's limits (issue 21): a model that cannot fit and settings that
do not fit the start weights are refused on the page, before anything launches; the page says
how long a run may hold the lock and how much a visitor may upload."""

from pathlib import Path

import pytest
import streamlit as st
from conftest import tiny_checkpoint
from streamlit.testing.v1 import AppTest

from qfitlatent.train import jobs

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120


@pytest.fixture
def page(tmp_path, monkeypatch):
    monkeypatch.setenv("QFITLATENT_WEIGHTS", str(tiny_checkpoint(tmp_path / "tiny.pt")))
    monkeypatch.setenv("QFITLATENT_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("QFITLATENT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("QFITLATENT_MAX_RUN_SECONDS", "7200")
    st.cache_data.clear()
    st.cache_resource.clear()
    return AppTest.from_file(str(ROOT / "pages" / "1_Train.py"), default_timeout=TIMEOUT).run()


def _start(at, name: str, extra: str, init: str | None = None):
    at.text_input(key="run_name").set_value(name)
    at.text_input(key="extra").set_value(extra)
    if init is not None:
        at.selectbox(key="init").set_value(init)
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return [e.value for e in at.error]


def test_a_model_too_large_for_the_server_is_refused_on_the_page(page):
    scratch = next(o for o in page.selectbox(key="init").options if o.startswith("from scratch"))
    errors = _start(page, "huge", "d_s=4096 n_blocks=64", scratch)
    assert errors and "4.45 G parameters" in errors[0] and "at most 20 M" in errors[0], errors
    assert not (jobs.runs_root() / "huge").exists()


def test_settings_that_do_not_fit_the_start_weights_are_refused_on_the_page(page):
    start = page.selectbox(key="init").options[0]  # the tiny weights: one block
    assert not start.startswith("from scratch")
    errors = _start(page, "misfit", "n_blocks=2", start)
    assert errors and "do not fit the start model" in errors[0] and "n_blocks" in errors[0]
    assert not (jobs.runs_root() / "misfit").exists()


def test_the_page_says_how_long_a_run_may_take_and_what_a_visitor_may_upload(page):
    assert any("a run stops after 2 h 00 min" in c.value for c in page.caption)
    page.radio(key="data_kind").set_value("upload structures or a .zip").run()
    upload = next(u for u in page.get("file_uploader") if u.proto.label.startswith("Structures"))
    assert "your runs keep at most 2048 MB of uploads" in upload.proto.help
