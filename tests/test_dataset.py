"""Folder dataset: cache, split, skipping, and data-report against an independent count."""

import gzip
import json
import shutil

import gemmi
import numpy as np
import pytest
import torch
from conftest import DATA, data_file, header_resolution

from qfitlatent import residues
from qfitlatent.cli import main
from qfitlatent.dataset import FeatureCache, data_report, load_dataset, pdb_group, split_names

SMALL = ["2igd.pdb.gz", "1usm.pdb.gz", "2o9s.pdb.gz", "1ifc.pdb.gz", "3cye.pdb.gz", "2r2z.pdb.gz"]


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    for name in SMALL:
        shutil.copy(data_file(name), d / name)
    (d / "notes.pdb").write_text("not a structure\n")
    (d / "README.txt").write_text("ignored: not a structure file name\n")
    return d


def test_cache_reads_each_file_once_and_rereads_an_edited_one(tmp_path, monkeypatch):
    src = tmp_path / "x.pdb"
    src.write_bytes(gzip.open(data_file("2igd.pdb.gz")).read())
    cache = FeatureCache(tmp_path / "cache")
    first = cache.load(src)
    calls = []
    import qfitlatent.dataset as ds

    real = ds.load_features
    monkeypatch.setattr(ds, "load_features", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = cache.load(src)
    assert calls == [] and again.n_res == first.n_res and again.name == "x"
    src.write_text(src.read_text().replace(" 0.55 ", " 0.65 ", 1))
    edited = cache.load(src)  # a changed file misses the cache and is read again
    assert calls == [1] and not torch.equal(edited.occ, first.occ)


def test_bad_files_are_skipped_with_reasons(folder):
    feats, skipped = load_dataset(folder)
    assert len(feats) == len(SMALL)
    assert skipped and skipped[0][0] == "notes.pdb" and "no atoms" in skipped[0][1]


def test_split_is_deterministic_disjoint_by_pdb_id_and_stable_when_files_are_added():
    names = [p.name.split(".")[0] for p in sorted(DATA.glob("*.gz"))] or [
        f"{i}abc" for i in range(100)
    ]
    names += ["1a2p", "1a2p_qfit"]
    s1, s2 = split_names(names, 0.1, seed=0), split_names(list(reversed(names)), 0.1, seed=0)
    assert s1 == s2
    assert not {pdb_group(n) for n in s1["train"]} & {pdb_group(n) for n in s1["val"]}
    assert 0.03 < len(s1["val"]) / len(names) < 0.2
    more = split_names(names + ["9zzz", "8yyy"], 0.1, seed=0)
    assert set(s1["val"]) <= set(more["val"]) and set(s1["train"]) <= set(more["train"])
    assert split_names(names, 0.1, seed=1) != s1


def _independent_count(path) -> int:
    """Residues with >= 2 distinct side-chain altlocs of positive occupancy and >= 1 χ.

    Written against gemmi's first_conformer-free atom iteration, without the package's reader.
    """
    st = gemmi.read_structure(str(path))
    st.remove_hydrogens()
    count = 0
    for chain in st[0]:
        for res in chain:
            info = gemmi.find_tabulated_residue(res.name)
            if not info or not info.is_amino_acid():
                continue
            parent = (
                res.name
                if res.name in residues.TOKEN
                else (
                    residues.AA3[residues.AA1.index(info.one_letter_code.upper())]
                    if info.one_letter_code.islower()
                    and info.one_letter_code.upper() in residues.AA1
                    else ""
                )
            )
            chi_names = residues.CHI_ATOMS.get(parent, [])
            if not chi_names or not {"N", "CA", "C"} <= {a.name for a in res}:
                continue
            rename = residues.ATOM_RENAMES.get(res.name, {})
            atoms = [
                (rename.get(a.name, a.name), a.altloc, a.occ, np.array(a.pos.tolist()))
                for a in res
                if a.name not in ("N", "CA", "C", "O", "OXT")
            ]
            alts = sorted({alt for _, alt, _, _ in atoms if alt != "\0"})
            confs = []
            for alt in alts:
                own = [x for x in atoms if x[1] == alt]
                if np.mean([x[2] for x in own]) <= 0:
                    continue
                coords = {n: xyz for n, a, _, xyz in atoms if a in (alt, "\0")}
                if not any(
                    all(np.abs(coords[n] - c[n]).max() < 0.05 for n in coords if n in c)
                    for c in confs
                ):
                    confs.append(coords)
            names_present = {n for n, _, _, _ in atoms} | {"N", "CA"}
            if len(confs) >= 2 and set(chi_names[0]) <= names_present:
                count += 1
    return count


def test_data_report_counts_match_an_independent_count(folder):
    report = data_report(folder)
    expected = sum(_independent_count(folder / name) for name in SMALL)
    assert report["valid_residues"] == expected
    assert sum(report["valid_per_aa"].values()) == expected
    assert report["structures"] == len(SMALL) and len(report["skipped"]) == 1
    # Every SMALL structure has altlocs, so every residue in R is a flexible label too.
    assert report["structures_with_altlocs"] == len(SMALL)
    assert report["flex_positive_residues"] == expected
    # The header's resolution, read from the raw text (conftest.header_resolution).
    headers = [header_resolution(gzip.open(folder / n, "rt").read()) for n in SMALL]
    given = [r for r in headers if r is not None]
    assert len(given) == 4  # 1USM and 2O9S have no resolution in their header
    assert report["structures_with_resolution"] == len(given)
    assert report["resolution_range"] == pytest.approx([min(given), max(given)])


def test_data_report_cli_json(folder, capsys):
    assert main(["data-report", str(folder), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("structures", "skipped", "residues", "valid_residues", "valid_per_aa"):
        assert key in out
    assert out["skipped"][0]["file"] == "notes.pdb"
    assert main(["data-report", str(folder)]) == 0
    assert "residues in R" in capsys.readouterr().out


def test_full_data_report_matches_the_independent_count():
    """The figures the README quotes: every file of ../shared/data/multiconf, counted twice."""
    if not DATA.exists():
        pytest.skip("../shared/data/multiconf is absent")
    report = data_report(DATA)
    assert report["skipped"] == []
    assert report["valid_residues"] == sum(_independent_count(p) for p in sorted(DATA.glob("*.gz")))
