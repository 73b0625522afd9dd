"""Issue 14's layout rules, read from the source: who may import whom, and who owns metrics.jsonl.

A rule that only lived in a README would drift; these fail the day someone breaks one.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "qfitlatent"


def imported_modules(tree: ast.Module, module: str) -> list[str]:
    """Every module the imports of `module` (dotted, e.g. "qfitlatent.viz.chi") name, relative
    imports resolved, lazy imports inside functions included."""
    out = []
    package = module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            name = ".".join(base + ([node.module] if node.module else []))
            out += [name] + [f"{name}.{a.name}" for a in node.names]  # "from .. import x"
    return out


def _module(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    return ".".join(rel.parts)


def _imports_under(folder: Path) -> dict[str, list[str]]:
    files = sorted(folder.rglob("*.py"))
    assert files, folder
    return {p.name: imported_modules(ast.parse(p.read_text()), _module(p)) for p in files}


def _breaking(imports: dict[str, list[str]], banned: tuple[str, ...]) -> list[str]:
    return [f"{f} imports {m}" for f, names in imports.items() for m in names
            if m.startswith(banned)]  # fmt: skip


def test_the_network_imports_no_evaluation_training_or_app_code():
    banned = ("qfitlatent.eval", "qfitlatent.train", "qfitlatent.ui", "qfitlatent.viz",
              "qfitlatent.predict", "streamlit")  # fmt: skip
    assert _breaking(_imports_under(PACKAGE / "model"), banned) == []


def test_viz_imports_neither_predict_train_ui_nor_streamlit_and_takes_no_prediction():
    banned = ("qfitlatent.predict", "qfitlatent.train", "qfitlatent.ui", "qfitlatent.display",
              "streamlit")  # fmt: skip
    assert _breaking(_imports_under(PACKAGE / "viz"), banned) == []
    for path in sorted((PACKAGE / "viz").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                given = node.args
                args = [a.arg for a in given.posonlyargs + given.args + given.kwonlyargs]
                assert "pred" not in args, f"{path.name}: {node.name} takes a Prediction"


def test_pages_reach_training_only_through_ui():
    """A page that imported train would bypass ui's session ownership of runs."""
    pages = [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py"))]
    for page in pages:
        names = imported_modules(ast.parse(page.read_text()), page.stem)
        assert [m for m in names if m.startswith("qfitlatent.train")] == [], page.name


def test_only_the_run_log_names_metrics_jsonl():
    """metrics.jsonl is written and read only through train/runlog.py: no other module of the
    package holds the file name as a value it could open (help texts may mention it)."""
    holders = [
        _module(path)
        for path in sorted(PACKAGE.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and node.value == "metrics.jsonl"
    ]
    assert holders == ["qfitlatent.train.runlog"]


def test_the_import_check_resolves_relative_imports():
    # The checks above could pass by resolving nothing: "from ..predict import x" in viz/ must
    # come out as qfitlatent.predict, "from . import chi" as qfitlatent.viz.chi.
    tree = ast.parse("from ..predict import x\nfrom . import chi\ndef f():\n    import streamlit")
    names = imported_modules(tree, "qfitlatent.viz.profile")
    assert "qfitlatent.predict" in names and "qfitlatent.viz.chi" in names
    assert "streamlit" in names
    tree = ast.parse("from ..eval.baselines import fit_baselines")
    assert _breaking({"prior.py": imported_modules(tree, "qfitlatent.model.prior")},
                     ("qfitlatent.eval",)) == ["prior.py imports qfitlatent.eval.baselines",
                                               "prior.py imports qfitlatent.eval.baselines.fit_baselines"]  # fmt: skip  # noqa: E501


def test_the_run_supervisor_and_launch_start_without_torch():
    """`python -m qfitlatent.train.jobs` supervises every Train-page run and must be listening
    for Stop within a fraction of a second; importing torch there (through config) once let a
    Stop arrive first, and the run was judged gone while its supervisor still held the lock.
    `launch` reads the presets: a torch import there cost every racing launcher 2 s of CPU."""
    import subprocess
    import sys

    code = (
        "import sys, qfitlatent.train.jobs, qfitlatent.config, qfitlatent.server_config, "
        "qfitlatent.uploads; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
