"""The map head's training cache is read only when it was made the way this run makes it."""

import numpy as np

from qfitlatent.density.residue_evidence import FEATURES
from qfitlatent.train.map_head import _current


def test_a_cache_with_other_b_or_features_is_recomputed(tmp_path):
    made = tmp_path / "refined.npz"
    np.savez(made, feature_names=np.array(FEATURES), b_refined=np.bool_(True))
    assert _current(made, refine_b=True)
    assert not _current(made, refine_b=False)  # B kept as refined with the altlocs: not this
    older = tmp_path / "v2.npz"  # a cache from before B were recorded, or fewer features
    np.savez(older, feature_names=np.array(FEATURES))
    assert not _current(older, refine_b=False)
    np.savez(older, feature_names=np.array(FEATURES[:-1]), b_refined=np.bool_(False))
    assert not _current(older, refine_b=False)
    assert not _current(tmp_path / "missing.npz", refine_b=False)
