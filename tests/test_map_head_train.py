"""Fitting the map head: which fits it chooses, and where a consistent refit is written."""

import csv

import numpy as np
import pytest

from qfitlatent.density.posterior import CANDIDATES, VARIANTS, load_map_head, uses_near_copy
from qfitlatent.density.residue_evidence import FEATURES
from qfitlatent.train import map_head


def test_one_se_rule_prefers_fewer_inputs_only_within_noise():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.05, 100)  # [S] per-structure spread: SE of a mean about 0.005
    per = {"both": 0.90 + noise, "both_peaks": 0.898 + noise, "both_b": 0.80 + noise}
    names = ("both", "both_peaks", "both_b")
    assert len(VARIANTS["both_peaks"]) < len(VARIANTS["both"])
    assert map_head.choose_fit(per, names) == "both_peaks"  # 0.002 below: within one SE
    per["both_peaks"] = 0.88 + noise  # 0.02 below: more than noise, the best one is kept
    assert map_head.choose_fit(per, names) == "both"


def _cache(run, pretrain, n_structures=6, n_res=40):
    """A pretrain MANIFEST and a consistent (B refined) cache for it: feature 0 (fofc_peak)
    carries the label, as the mFo-DFc peak does on real maps."""
    rng = np.random.default_rng(1)
    fields = ["filename", "pdb_id", "resolution", "n_protein_res", "n_sc_altloc_res"]
    with open(pretrain / "MANIFEST.tsv", "w", newline="") as f:
        w = csv.DictWriter(f, fields, delimiter="\t")
        w.writeheader()
        for k in range(n_structures):
            row = [f"9x{k:02d}.pdb.gz", f"9X{k:02d}", 1.8, n_res, 5]
            w.writerow(dict(zip(fields, row, strict=True)))
            y = (rng.random(n_res) < 0.3).astype(np.float64)
            x = rng.normal(size=(n_res, len(FEATURES)))
            x[:, 0] += 2 * y
            np.savez(
                run / f"9x{k:02d}.npz",
                p_network=rng.uniform(0.05, 0.95, n_res),
                features=x,
                label=y,
                scanned=np.ones(n_res, bool),
                feature_names=np.array(FEATURES),
                r_work=np.float64(0.18),
                b_refined=np.bool_(True),
            )


def test_refit_on_consistent_maps_writes_v2_and_leaves_v1(tmp_path, monkeypatch):
    run, pretrain = tmp_path / "run", tmp_path / "pretrain"
    run.mkdir()
    pretrain.mkdir()
    _cache(run, pretrain)
    v1, v2 = tmp_path / "map-head-v1.json", tmp_path / "map-head-v2.json"
    v1.write_text("the shipped head")
    monkeypatch.setattr(map_head, "V1_PATH", v1)
    monkeypatch.setattr(map_head, "V2_PATH", v2)
    assert map_head.main([str(run), "--pretrain", str(pretrain)]) == 0  # the defaults: v2
    assert v1.read_text() == "the shipped head"
    head = load_map_head(v2)
    assert "refined against the data" in head.trained_on
    # chosen by the rule from the candidates, each with the network as prior
    assert head.difference.inputs in [VARIANTS[n] for n in CANDIDATES["difference"]]
    assert head.two_fofc_only.inputs in [VARIANTS[n] for n in CANDIDATES["two_fofc_only"]]
    assert set(head.cross_validated_auroc) == set(VARIANTS)
    assert head.cross_validated_auroc["difference_alone"] > 0.8  # the cue in the cache is found


def test_the_command_rebuilds_v2_unless_told_to_keep_the_b():
    """Like every other default, the command's is the shipped head's kind (v2: B refined
    against the data, fits by cross-validation, map-head-v2.json); --keep-b gives v1's."""
    v2 = map_head.parse_args(["run"])
    assert (v2.refine_b, v2.fits, v2.out) == (True, "cv", map_head.V2_PATH)
    v1 = map_head.parse_args(["run", "--keep-b"])
    assert (v1.refine_b, v1.fits, v1.out) == (False, "v1", map_head.V1_PATH)
    # what is given stands
    mixed = map_head.parse_args(["run", "--keep-b", "--fits", "cv", "--out", "h.json"])
    assert (mixed.refine_b, mixed.fits, str(mixed.out)) == (False, "cv", "h.json")
    with pytest.raises(SystemExit):  # the old flag is gone, not silently ignored
        map_head.parse_args(["run", "--refine-b"])


def test_the_default_head_was_trained_on_inputs_as_users_have_them():
    # v1's synthetic inputs kept the B refined with their altlocs (docs/density.md)
    head = load_map_head()
    assert "single-conformer B refined against the data" in head.trained_on
    assert head.split_threshold is not None


def test_the_default_head_reads_no_costly_near_copy_scan():
    # its CCP4 fit reads the model's side-chain B, which costs nothing: no χ2 scans for it
    assert uses_near_copy(load_map_head()) is False
