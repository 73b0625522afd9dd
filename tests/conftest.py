"""Shared fixtures: the real multiconformer structures beside the repository (../shared/data)."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "multiconf"

# Tests run small tensors, where torch's second thread costs more than it gives on a 2-core
# machine (predict on 300 residues: 1.3 s with one thread, 6-10 s with two under load).
os.environ.setdefault("OMP_NUM_THREADS", "1")


def data_file(name: str) -> Path:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"real structure {name} not found in {DATA.name}/ (../shared/data is absent)")
    return path


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own feature cache, so no test reads another's results."""
    monkeypatch.setenv("QFITLATENT_CACHE", str(tmp_path_factory.mktemp("feature-cache")))
