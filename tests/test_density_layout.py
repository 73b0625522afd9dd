"""qfitlatent.density sits below predict/app: it reads maps and answers questions about them, and
nothing in it may reach up into the code that will call it (issue 14's one-way dependencies)."""

from test_layout import PACKAGE, _breaking, _imports_under


def test_density_imports_no_prediction_app_training_or_evaluation_code():
    banned = ("qfitlatent.predict", "qfitlatent.ui", "qfitlatent.cli", "qfitlatent.viz",
              "qfitlatent.train", "qfitlatent.eval", "qfitlatent.model", "streamlit")  # fmt: skip
    imports = _imports_under(PACKAGE / "density")
    assert "ringer.py" in imports and "read.py" in imports
    assert _breaking(imports, banned) == []
