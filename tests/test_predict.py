"""`predict` and `qfitlatent predict`: the output files, their formats, batch mode."""

import csv
import io
import json
import math
import shutil

import gemmi
import pandas as pd
import pytest
import torch
from conftest import data_file, tiny_model

from qfitlatent import cli
from qfitlatent.checkpoint import save_checkpoint
from qfitlatent.ensemble.multiconf import REPORT_COLUMNS
from qfitlatent.ensemble.sample import MAX_SAMPLES, MAX_SEED, MAX_TEMPERATURE, MIN_TEMPERATURE
from qfitlatent.ensemble.sidechains import measure_chis
from qfitlatent.predict import (
    MIXTURE_FORMAT,
    OUTPUT_FILES,
    mixture_json,
    multiconformer_pdb,
    output_name,
    outputs,
    predict,
    residue_conformers,
    write_outputs,
)

SMALL = "2i4a.pdb.gz"  # 107 residues, every standard type
SMALL_2 = "1ab1.pdb.gz"  # 46 residues
SMALL_3 = "1ejg.pdb.gz"  # crambin, 48 residues, 0.54 Å, many altlocs
TABLE_KEYS = {
    "chain",
    "resnum",
    "icode",
    "resname",
    "n_chi",
    "flexibility",
    "p_flexible",
    "entropy",
    "entropy_per_chi",
    "n_modes",
    "chi1_spread_deg",
    "n_obs",
    "rank",
}


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def pred(model):
    return predict(model, data_file(SMALL), n_samples=12, seed=1)


def validate_mixture_json(doc: dict) -> list[str]:
    """Problems with a mixture.json document (empty when it has the agreed shape)."""
    problems = []

    def need(cond, msg):
        if not cond:
            problems.append(msg)

    need(doc.get("format") == MIXTURE_FORMAT, "format")
    need(isinstance(doc.get("structure"), str) and doc["structure"], "structure")
    need(isinstance(doc.get("weights"), str), "weights")
    need(isinstance(doc.get("residues"), list), "residues")
    for r in doc.get("residues", []):
        where = f"{r.get('chain')}{r.get('resnum')}"
        need(isinstance(r.get("chain"), str) and isinstance(r.get("icode"), str), f"{where}: ids")
        need(
            isinstance(r.get("resnum"), int) and isinstance(r.get("resname"), str), f"{where}: ids"
        )
        need(isinstance(r.get("n_chi"), int) and 1 <= r["n_chi"] <= 4, f"{where}: n_chi")
        w = r.get("weights", [])
        k = len(w)
        need(k >= 1 and all(isinstance(x, float) and x >= 0 for x in w), f"{where}: weights")
        need(abs(sum(w) - 1) < 1e-6, f"{where}: weights sum")
        for key in ("mu", "kappa"):
            rows = r.get(key, [])
            need(len(rows) == k and all(len(row) == 4 for row in rows), f"{where}: {key} shape")
            need(
                all(isinstance(x, float) and math.isfinite(x) for row in rows for x in row),
                f"{where}: {key} numbers",
            )
        need(
            all(abs(x) <= math.pi + 1e-6 for row in r.get("mu", []) for x in row),
            f"{where}: mu range",
        )
        need(all(x > 0 for row in r.get("kappa", []) for x in row), f"{where}: kappa > 0")
        need(
            isinstance(r.get("entropy"), float) and math.isfinite(r["entropy"]), f"{where}: entropy"
        )
        p = r.get("p_flexible", "missing")
        need(p is None or (isinstance(p, float) and 0.0 <= p <= 1.0), f"{where}: p_flexible")
    return problems


def test_validator_catches_a_broken_document(pred):
    doc = mixture_json(pred, "tiny.pt")
    assert validate_mixture_json(doc) == []
    bad = json.loads(json.dumps(doc))
    bad["residues"][0]["weights"][0] += 0.5
    del bad["residues"][1]["kappa"][0][3]
    assert len(validate_mixture_json(bad)) == 2


def test_predict_writes_every_file(pred, tmp_path):
    written = write_outputs(pred, tmp_path / "2i4a", "tiny.pt")
    stem = pred.parsed.name
    assert sorted(written) == sorted(f"{stem}_{end}" for end in OUTPUT_FILES.values())
    assert {n: p.read_bytes() for n, p in written.items()} == outputs(pred, "tiny.pt")
    paths = {kind: written[output_name(pred, kind)] for kind in OUTPUT_FILES}
    doc = json.loads(paths["mixture"].read_text())
    assert validate_mixture_json(doc) == []
    assert doc["structure"] == SMALL and doc["weights"] == "tiny.pt"
    with_chi = [i for i in range(pred.features.n_res) if pred.features.chi_defined[i].any()]
    assert [(r["chain"], r["resnum"]) for r in doc["residues"]] == [
        (pred.features.chain_id[i], int(pred.features.resnum[i])) for i in with_chi
    ]
    rows = list(csv.DictReader(io.StringIO(paths["table"].read_text())))
    assert len(rows) == len(with_chi) and TABLE_KEYS <= set(rows[0])
    # Ranked by the flexibility score, which is p_flexible for weights with the head.
    flex = [float(r["flexibility"]) for r in rows]
    assert flex == sorted(flex, reverse=True) and [int(r["rank"]) for r in rows] == list(
        range(1, len(rows) + 1)
    )
    # p_flexible: the network's, in mixture.json (file order) and residues.csv (ranked) alike.
    in_csv = {(r["chain"], int(r["resnum"])): float(r["p_flexible"]) for r in rows}
    for r, i in zip(doc["residues"], with_chi, strict=True):
        assert r["p_flexible"] == pytest.approx(float(pred.p_flexible[i]), abs=1e-6)
        assert in_csv[(r["chain"], r["resnum"])] == pytest.approx(r["p_flexible"], abs=1e-4)
    for key in ("pdb", "cif", "samples_pdb", "samples_cif"):
        assert gemmi.read_structure(str(paths[key]))[0].count_atom_sites() > 0
    # report.csv opens in any CSV reader: the header is its first line (issue 19).
    report = pd.read_csv(paths["report"])
    assert list(report.columns) == list(REPORT_COLUMNS) and len(report) > 0
    summary = doc["multiconformer"]  # its structure-level numbers live in mixture.json
    assert summary["residues_split"] == pred.multiconformer.n_split
    assert summary["expected_flexible"] == pytest.approx(pred.multiconformer.expected_flexible,
                                                         abs=0.01)  # fmt: skip


def test_without_a_flexibility_head_p_flexible_is_null_and_the_fallback_ranks(pred):
    from dataclasses import replace

    from qfitlatent.ensemble.conformers import distinct_mass, flexibility_score

    f = pred.features
    none = replace(pred, p_flexible=None)
    doc = mixture_json(none, "old.pt")
    assert validate_mixture_json(doc) == []
    assert all(r["p_flexible"] is None for r in doc["residues"])
    fallback = distinct_mass(pred.mixture, f.chi_defined, f.pi_symmetric)
    score = flexibility_score(pred.mixture, f.chi_defined, f.pi_symmetric, None)
    assert torch.equal(score, fallback)


def test_prediction_shapes_and_reproducibility(model, pred):
    n = pred.features.n_res
    assert pred.samples.shape == (12, n, 4)
    assert pred.mixture.logits.dtype == torch.float32 and pred.mixture.mu.shape[:1] == (n,)
    assert TABLE_KEYS <= set(pred.table[0])
    # Same seed, same files; from bytes as the app passes them.
    first = predict(model, data_file(SMALL_2), n_samples=6, seed=1)
    again = predict(model, data_file(SMALL_2).read_bytes(), name=SMALL_2, n_samples=6, seed=1)
    assert multiconformer_pdb(again) == multiconformer_pdb(first)
    assert outputs(again, "w") == outputs(first, "w")
    other = predict(model, data_file(SMALL_2), n_samples=6, seed=2)
    assert not torch.equal(other.samples, first.samples)


def test_residue_conformers_are_the_written_ones(model):
    from qfitlatent.ensemble.multiconf import SplitOptions

    pred = predict(model, data_file(SMALL), n_samples=4, options=SplitOptions(threshold=0.0))
    i = next(iter(pred.multiconformer.conformers))
    written = pred.multiconformer.conformers[i]
    confs = residue_conformers(pred, i)
    assert [c[0] for c in confs] == [w[0] for w in written] and confs[0][0] == "A"
    assert sum(c[1] for c in confs) == pytest.approx(1.0)
    rec = pred.parsed.residues[i]
    n = int(pred.features.chi_defined[i].sum())
    for (_, _, atoms), (_, _, chi) in zip(confs, written, strict=True):
        assert {"N", "CA", "C", "CB"} <= set(atoms)
        got = measure_chis({k: torch.tensor(v) for k, v in atoms.items()}, rec.parent)
        assert torch.allclose(got[:n], chi[:n].double(), atol=1e-5)


@pytest.fixture(scope="module")
def weights(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "tiny.pt"
    return save_checkpoint(path, model_cfg=model.cfg, model=model)


def test_batch_mode_skips_a_broken_file_and_exits_nonzero(weights, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(data_file(SMALL_3), folder / SMALL_3)
    shutil.copy(data_file(SMALL_2), folder / SMALL_2)
    (folder / "broken.pdb").write_text("this is not a structure\n")
    out = tmp_path / "out"
    code = cli.main(
        ["predict", str(folder), "--weights", str(weights), "--out", str(out), "--samples", "4"]
    )
    assert code == 1
    assert "broken.pdb" in capsys.readouterr().err
    assert "skipped" in (out / "predict-failures.log").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["1ab1", "1ejg", "predict-failures.log"]
    for sub in (out / "1ab1", out / "1ejg"):
        expected = sorted(f"{sub.name}_{end}" for end in OUTPUT_FILES.values())
        assert sorted(p.name for p in sub.iterdir()) == expected


def test_cli_settings_reach_the_multiconformer_model(weights, tmp_path, capsys):
    out = tmp_path / "o"
    args = ["predict", str(data_file(SMALL_2)), "--weights", str(weights), "--out", str(out)]
    assert cli.main([*args, "--threshold", "0", "--max-conformers", "2"]) == 0
    doc = json.loads((out / "1ab1" / "1ab1_mixture.json").read_text())
    assert doc["multiconformer"]["settings"]["threshold"] == 0
    assert doc["multiconformer"]["settings"]["max_conformers"] == 2
    assert "split" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stop:  # argparse refuses it with the usage line
        cli.main([*args, "--threshold", "1.5"])
    assert stop.value.code == 2 and "--threshold" in capsys.readouterr().err


def test_all_good_files_exit_zero_and_missing_weights_say_so(weights, tmp_path, capsys):
    args = ["predict", str(data_file(SMALL_2)), "--out", str(tmp_path / "o"), "--samples", "3"]
    assert cli.main([*args, "--weights", str(weights)]) == 0
    assert (tmp_path / "o" / "1ab1" / "1ab1_mixture.json").is_file()
    assert cli.main([*args, "--weights", str(tmp_path / "nothing.pt")]) == 2
    assert "no model weights" in capsys.readouterr().err


def test_shipped_weights_predict_a_real_structure(tmp_path):
    from qfitlatent.checkpoint import default_weights, load_model

    model, _ = load_model(default_weights(), "cpu")
    pred = predict(model, data_file(SMALL_2), n_samples=4)
    doc = mixture_json(pred, default_weights().name)
    assert validate_mixture_json(doc) == []
    assert len(write_outputs(pred, tmp_path, default_weights().name)) == len(OUTPUT_FILES)


@pytest.mark.parametrize(
    "setting",
    [{"n_samples": 1_000_000_000}, {"n_samples": 0}, {"n_samples": 2.5}, {"temperature": 1e-20},
     {"temperature": float("nan")}, {"temperature": 0.0}, {"seed": 2**64}, {"seed": -1}],
)  # fmt: skip
def test_sampling_settings_out_of_range_are_refused_in_words(model, setting):
    # Issue 21.4: a billion samples died in the allocator, 1e-20 spun forever, a seed above
    # 2^64 gave a traceback. Refused before any work, with a sentence naming the limit.
    with pytest.raises(ValueError, match=r"^the (number of samples|temperature|seed) must"):
        predict(model, data_file(SMALL_2), **setting)


def test_cli_sampling_limits_come_from_one_place(weights, tmp_path, capsys):
    args = ["predict", str(data_file(SMALL_2)), "--weights", str(weights), "--out", str(tmp_path)]
    too_far = (("--samples", MAX_SAMPLES + 1), ("--temperature", MIN_TEMPERATURE / 10),
               ("--temperature", MAX_TEMPERATURE * 10), ("--seed", MAX_SEED + 1))  # fmt: skip
    for flag, bad in too_far:
        with pytest.raises(SystemExit) as stop:
            cli.main([*args, flag, str(bad)])
        err = capsys.readouterr().err
        assert stop.value.code == 2 and flag in err and "Traceback" not in err
    # the limits themselves are accepted
    assert cli.main([*args, "--samples", "2", "--temperature", str(MIN_TEMPERATURE),
                     "--seed", str(MAX_SEED)]) == 0  # fmt: skip


def _with_chain_names(path, names, n_residues: int | None = None) -> bytes:
    """The structure as mmCIF with its first chain (its first `n_residues`) copied to `names`."""
    st = gemmi.read_structure(str(path))
    st.setup_entities()
    model = st[0]
    template = model[0].clone()
    while n_residues is not None and len(template) > n_residues:
        del template[len(template) - 1]
    while len(model):
        model.remove_chain(model[0].name)
    for k, name in enumerate(names):
        chain = template.clone()
        chain.name = name
        for res in chain:  # each copy elsewhere, so they do not sit on each other
            for a in res:
                a.pos = gemmi.Position(a.pos.x + 60.0 * k, a.pos.y, a.pos.z)
        model.add_chain(chain)
    st.setup_entities()
    return st.make_mmcif_document().as_string().encode()


def test_long_chain_names_write_pdb_with_a_chain_map(model):
    """Issue 21.1: an mmCIF with chain names of 3+ characters crashed `outputs` while writing
    the PDB files. Now the PDB files use one-character names and say which is which."""
    data = _with_chain_names(data_file(SMALL_2), ["ABC", "LONGNAME"])
    pred = predict(model, data, name="long.cif", n_samples=3)
    files = outputs(pred, "w")
    assert len(files) == len(OUTPUT_FILES)
    pdb = files[output_name(pred, "pdb")].decode()
    samples = gemmi.read_pdb_string(files[output_name(pred, "samples_pdb")].decode())
    assert "chain A is chain ABC of the mmCIF file" in pdb.replace("\nREMARK 250 ", " ")
    assert {ch.name for ch in gemmi.read_pdb_string(pdb)[0]} >= {"A", "B"}
    assert len(samples) == 3 and all(len(ch.name) == 1 for m in samples for ch in m)
    cif = gemmi.cif.read_string(files[output_name(pred, "cif")].decode()).sole_block()
    assert set(cif.find_values("_atom_site.auth_asym_id")) == {"ABC", "LONGNAME"}
    doc = json.loads(files[output_name(pred, "mixture")])
    assert doc["multiconformer"]["pdb_chain_names"] == {"ABC": "A", "LONGNAME": "B"}


def test_too_many_long_chain_names_leave_out_only_the_pdb_files(model):
    names = [f"C{k:02d}" for k in range(63)]  # one more than the PDB's one-character names
    data = _with_chain_names(data_file(SMALL_2), names, n_residues=3)
    pred = predict(model, data, name="many.cif", n_samples=1)
    files = outputs(pred, "w")
    assert output_name(pred, "pdb") not in files and output_name(pred, "samples_pdb") not in files
    assert output_name(pred, "cif") in files
    why = json.loads(files[output_name(pred, "mixture")])["multiconformer"]["pdb_not_written"]
    assert "do not fit" in why and "mmCIF" in why


def _side_chain_conformers_in_file(text: str) -> dict[tuple[str, int, str], int]:
    """Distinct side-chain conformers per residue of a written PDB, counted on gemmi atoms: an
    altloc's side chain is its atoms plus the blank ones; copies within 0.05 Å are one. Keyed
    by residue name too: crambin's residue 25 is LEU in altloc A and ILE in B and C."""
    st = gemmi.read_pdb_string(text)
    counts = {}
    for chain in st[0]:
        for res in chain:
            side = [a for a in res if a.name not in ("N", "CA", "C", "O") and a.element.name != "H"]
            letters = sorted({a.altloc for a in side if a.altloc != "\0"}) or ["\0"]
            shapes = []
            for letter in letters:
                atoms = {a.name: a.pos for a in side if a.altloc in ("\0", letter)}
                same = any(
                    atoms.keys() == s.keys() and all(atoms[n].dist(s[n]) < 0.05 for n in atoms)
                    for s in shapes
                )
                if not same:
                    shapes.append(atoms)
            counts[(chain.name, res.seqid.num, res.name)] = len(shapes)
    return counts


@pytest.mark.parametrize("input_altlocs", ["keep", "replace"])
def test_table_counts_the_side_chain_conformers_the_file_holds(model, input_altlocs):
    """residues.csv's n_conformers is what multiconformer.pdb holds: the input's altlocs where
    they are kept (it said 1 for them), plus ours where a residue is split."""
    from qfitlatent.ensemble.multiconf import SplitOptions

    options = SplitOptions(threshold=0.3, input_altlocs=input_altlocs)
    pred = predict(model, data_file(SMALL_3), n_samples=4, options=options)
    in_file = _side_chain_conformers_in_file(multiconformer_pdb(pred))
    rows = [r for r in pred.table if r["n_chi"] > 0]
    assert any(r["n_obs"] > 1 for r in rows)  # crambin at 0.54 Å: altlocs to count
    for r in rows:
        assert r["n_conformers"] == in_file[(r["chain"], r["resnum"], r["resname"])], r
