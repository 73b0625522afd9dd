"""The structure's text goes to the viewer component only when it does not hold it (AppTest):
in whole-structure mode a residue change sends the scene without the tens of MB of text, and a
new iframe (a return from the Train page, or one that asks) gets the text again, so the viewer is
never left without it. The browser side: tests/test_viewer_browser.py and test_browser.py.
"""

import json
from pathlib import Path

import pytest
from conftest import tiny_app_env
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """The example open in whole-structure mode."""
    tmp = tmp_path_factory.mktemp("viewer-text")
    with tiny_app_env(tmp):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180).run()
        at.button(key="example").click().run()
        at.toggle(key="whole").set_value(True).run()
        assert not at.exception, [e.value for e in at.exception]
        yield at


def sent(at) -> dict:
    """What the page sent its viewer component last: viz.viewer.Scene.message()."""
    (component,) = [
        c
        for c in at.get("component_instance")
        if c.proto.component_name.endswith("qfitlatent_viewer")
    ]
    return json.loads(component.proto.json_args)


def residue_box(at):
    return next(s for s in at.selectbox if s.key and s.key.startswith("residue:"))


def test_whole_mode_sends_the_structure_once_not_per_residue(page):
    first = sent(page)
    assert first["base"] is not None and first["base"].count("ATOM") > 1000  # the whole of it
    box = residue_box(page)
    box.set_value(box.options[3]).run()
    after = sent(page)
    assert after["focus"] != first["focus"]  # a new scene: another residue
    assert after["base"] is None and after["base_hash"] == first["base_hash"]
    # A display setting that changes the text (back to the neighbourhood) sends the new text.
    page.toggle(key="whole").set_value(False).run()
    near = sent(page)
    assert near["base"] is not None and near["base_hash"] != first["base_hash"]
    page.toggle(key="whole").set_value(True).run()
    assert sent(page)["base"] is not None  # the component holds the neighbourhood now


def test_a_viewer_that_asks_for_the_text_gets_it_once(page):
    page.run()
    assert sent(page)["base"] is None  # held
    # What viewer.js sets as its value when a scene comes without text it holds (a new iframe).
    page.session_state["viewer"] = {"ask": "iframe-2:1", "base_hash": sent(page)["base_hash"]}
    page.run()
    assert sent(page)["base"] is not None
    page.run()  # the request stays the component's value: answered once, not on every run
    assert sent(page)["base"] is None


def test_a_return_from_the_train_page_sends_the_text_again(page):
    page.run()
    assert sent(page)["base"] is None
    page.switch_page("pages/1_Train.py").run()
    assert not page.get("component_instance")  # no viewer there: Streamlit drops its iframe
    page.switch_page("app.py").run()
    assert not page.exception
    # The toggle kept its value (ui.keep_widgets): the same whole text, sent again to the new
    # iframe although its hash has not changed.
    assert page.toggle(key="whole").value
    assert sent(page)["base"] is not None and sent(page)["base"].count("ATOM") > 1000
