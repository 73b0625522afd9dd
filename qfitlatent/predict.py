"""Structure in → mixtures, flexibility table, multiconformer model, sampled ensemble out.

The command line (`qfitlatent predict` / `sample`) and the app both call `predict` and the
writers below (the only writers of these files), so a file written by either is the same bytes.
"""

import json
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import gemmi
import torch

from . import residues
from .checkpoint import resolve_device
from .density import MapPair, read_maps
from .density.posterior import MapHead, load_map_head, posterior, uses_near_copy
from .density.residue_evidence import ResidueEvidence, residue_evidence
from .ensemble import build
from .ensemble.conformers import (
    N_CANDIDATES,
    Selection,
    flexibility_score,
    iid_selection,
    select_conformers,
)
from .ensemble.multiconf import (
    MulticonformerModel,
    SplitOptions,
    build_multiconformer,
    report_csv,
    report_summary,
)
from .ensemble.sample import check_sampling, sample_chis
from .errors import CheckpointError
from .features import Features, featurize
from .flexibility import add_map_columns, flexibility_table
from .flexibility import table_csv as _table_csv
from .mixture import Mixture, sample
from .progress import Tick, no_tick, ticker
from .server_config import check_prediction_size
from .structure import ParsedStructure, read_structure

MIXTURE_FORMAT = "qfitlatent.mixture/1"
# Every output of a prediction: kind -> the end of its file name (after "<structure>_"), in the
# order the app offers them. `outputs` is the one producer of these bytes.
OUTPUT_FILES = {
    "pdb": "multiconformer.pdb",
    "cif": "multiconformer.cif",
    "samples_pdb": "samples.pdb",
    "samples_cif": "samples.cif",
    "report": "report.csv",
    "table": "residues.csv",
    "mixture": "mixture.json",
}
CONFORMER_SOURCES = ("select", "iid")  # where the multiconformer model's alternatives come from
N_PROPOSED = 6  # selector conformers proposed per residue for the multiconformer model


@dataclass
class Prediction:
    parsed: ParsedStructure
    features: Features
    mixture: Mixture  # logits [N, K], mu/kappa [N, K, D], CPU float32
    table: list[dict]  # flexibility rows, most flexible first (see flexibility.py)
    samples: torch.Tensor  # [S, N, D] iid draws, radians: the models of samples.pdb
    selection: Selection  # distinct conformers per residue that the multiconformer model tries
    entropy: torch.Tensor  # [N] nats over defined χ (0 where none)
    flexibility: torch.Tensor  # [N] conformers.flexibility_score: what is ranked and split
    multiconformer: MulticonformerModel  # the parsimonious altloc model and its report
    source_name: str  # the input's file name ("1abc.pdb.gz"), or the name given for bytes
    # [N] probability that the side chain has >= 2 distinct conformers (SPEC §5b); None for
    # weights without a flexibility head. With a map, the posterior given the network and the
    # map (density/posterior.py); without one, the network's own value.
    p_flexible: torch.Tensor | None = None
    maps: MapPair | None = None  # the map read with the structure, None without one
    evidence: ResidueEvidence | None = None  # the map's numbers per residue, None without a map
    p_network: torch.Tensor | None = None  # [N] the network's p_flexible (the prior)
    map_head: MapHead | None = None  # the head that combined them, None without a map


@torch.no_grad()
def predict(
    model,
    source,
    *,
    name: str | None = None,
    n_samples: int = 10,
    seed: int = 0,
    temperature: float = 1.0,
    device: str = "cpu",
    options: SplitOptions | None = None,
    conformers: str = "select",
    progress=None,
    map_file=None,
    map_name: str | None = None,
    map_from_data: bool = False,
    map_head: MapHead | None = None,
    all_evidence: bool = False,
) -> Prediction:
    """Predict one structure: `source` is a path, bytes, or an already read ParsedStructure.

    `options` set the multiconformer model (threshold, conformers, occupancy, input altlocs);
    `conformers` says where its alternatives come from: "select" (the selector's distinct
    peaks, the default) or "iid" (clusters of the S iid draws). `progress(fraction, text)`
    (progress.Report), when given, is called before each step (reading, features, network,
    sampling, building) and within the long ones (the network's blocks, conformer selection,
    the map's evidence and the multiconformer build, about every 1 %), so a page can show where
    a long structure is; an exception it raises stops the prediction there. Raises
    StructureError for input that cannot be used.

    `map_file` (a path, or bytes with `map_name` its file name) is the structure's density map
    (density.read_maps; `map_from_data` computes the maps from an MTZ's observed data even when
    it holds coefficients). With it, `p_flexible` is the posterior of the network's value and
    the map's evidence (`map_head`, by default the shipped weights/map-head-v2.json), the
    ranking and splitting use it, and the multiconformer model keeps only alternatives the map
    supports, at occupancies fitted to it. Raises MapError for a map that cannot be used.
    `all_evidence` reads every column of the map's evidence, also the near-copy ones the head
    does not use (residue_evidence.NEAR_COPY_FEATURES; else empty where the head needs none).
    """
    if conformers not in CONFORMER_SOURCES:
        raise ValueError(f"conformers must be one of {CONFORMER_SOURCES}")
    check_sampling(n_samples, temperature, seed)  # before any work: a clear line, no traceback
    step = progress or (lambda fraction, text: None)
    prep = prepare(model, source, name=name, progress=progress, map_file=map_file,
                   map_name=map_name, map_from_data=map_from_data, map_head=map_head,
                   all_evidence=all_evidence)  # fmt: skip
    predicting = f"Predicting χ mixtures for {prep.features.n_res:,} residues"
    step(0.25, predicting)
    blocks = ticker(progress, 0.25, 0.4, predicting, "network blocks")
    (out,) = predict_many(model, [prep], device, tick=blocks)
    return finish(model, prep, out, n_samples=n_samples, seed=seed, temperature=temperature,
                  options=options, conformers=conformers, progress=progress)  # fmt: skip


@dataclass
class Prepared:
    """A structure read and featurised, with its map where one was given: what the network
    needs, and what `finish` needs besides the network's output."""

    parsed: ParsedStructure
    features: Features
    source_name: str
    maps: MapPair | None = None
    map_head: MapHead | None = None
    all_evidence: bool = False  # read the near-copy evidence even where the head needs none


def prepare(
    model,
    source,
    *,
    name: str | None = None,
    progress=None,
    map_file=None,
    map_name: str | None = None,
    map_from_data: bool = False,
    map_head: MapHead | None = None,
    all_evidence: bool = False,
) -> Prepared:
    """`predict`'s steps before the network: read the structure (and its map), featurise it.
    Raises StructureError / MapError / CheckpointError as `predict` does."""
    step = progress or (lambda fraction, text: None)
    step(0.0, "Reading the structure")
    reading = ticker(progress, 0.0, 0.1 if map_file is None else 0.05, "Reading the structure",
                     "residues")  # fmt: skip
    parsed = (source if isinstance(source, ParsedStructure)
              else read_structure(source, name=name, tick=reading))  # fmt: skip
    check_prediction_size(parsed)  # the operator's residue cap, before any tensor is built
    source_name = name or (Path(source).name if isinstance(source, (str, Path)) else parsed.name)
    n = len(parsed.residues)
    maps = None
    if map_file is not None:  # before the network: a bad map is one line, at once
        if model_has_no_flex_head(model):
            raise CheckpointError(
                "these weights predict no p_flexible, which a map refines: use weights with a "
                "flexibility head (the shipped ones)"
            )
        map_head = map_head or load_map_head()
        step(0.05, _map_step(map_file, map_name, map_from_data))
        maps = read_maps(map_file, parsed.input_structure(), name=map_name,
                         from_data=map_from_data)  # fmt: skip
    step(0.1, f"Computing features of {n:,} residues")
    features = featurize(parsed, ticker(progress, 0.1, 0.25, "Computing features", "residues"))
    return Prepared(parsed, features, source_name, maps, map_head if maps is not None else None,
                    all_evidence)  # fmt: skip


@torch.no_grad()
def predict_many(model, preps: list[Prepared], device: str = "cpu", tick: Tick = no_tick) -> list:
    """The network's outputs (model.ModelOutput) for several prepared structures from one
    forward pass (model/packing.py): each equal, to float rounding, to its own forward pass.
    `tick(done, total)` hears each of the network's blocks finish."""
    from .model.packing import forward_many

    model.eval()
    with _block_ticks(model, tick):
        return forward_many(model, [p.features for p in preps], resolve_device(device))


@contextmanager
def _block_ticks(model, tick: Tick):
    """`tick(k, L)` as the k-th of the network's L IPA blocks finishes: the blocks take about
    90 % of its time (the pair embedding the rest). Forward hooks, so the model's code knows
    nothing of progress; a tick that raises stops the forward pass after that block. The app
    shares one model between its prediction threads, so a hook ticks only for the thread that
    set it: another prediction's forward pass is not this one's progress, nor its cancel."""
    blocks = list(getattr(model, "blocks", ()))
    if tick is no_tick or not blocks:
        yield
        return
    mine = threading.get_ident()

    def done(k: int) -> None:
        if threading.get_ident() == mine:
            tick(k, len(blocks))

    done(0)
    hooks = [block.register_forward_hook(lambda *_, k=k: done(k + 1))
             for k, block in enumerate(blocks)]  # fmt: skip
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()


@torch.no_grad()
def finish(
    model,
    prep: Prepared,
    out,
    *,
    n_samples: int = 10,
    seed: int = 0,
    temperature: float = 1.0,
    options: SplitOptions | None = None,
    conformers: str = "select",
    progress=None,
) -> Prediction:
    """`predict`'s steps after the network, from its output `out` (model.ModelOutput) for
    `prep`: the map's posterior, sampling, conformer selection, the multiconformer model."""
    head_threshold = prep.map_head.split_threshold if prep.map_head is not None else None
    options = (options or SplitOptions()).resolved(head_threshold)
    step = progress or (lambda fraction, text: None)
    parsed, features, maps = prep.parsed, prep.features, prep.maps
    n = features.n_res
    mix = Mixture(*(t.detach().float().cpu() for t in out.mixture))
    p_flexible = None if out.flex_logit is None else torch.sigmoid(out.flex_logit.float()).cpu()
    p_network, evidence = p_flexible, None
    if maps is not None:
        step(0.4, f"Reading the map's evidence for {n:,} side chains")
        near_copy = prep.all_evidence or uses_near_copy(prep.map_head)
        reading = ticker(progress, 0.4, 0.45, "Reading the map's evidence", "residues")
        evidence = residue_evidence(parsed, maps, near_copy=near_copy, tick=reading)
        p_flexible = torch.as_tensor(posterior(prep.map_head, p_network.numpy(), evidence),
                                     dtype=torch.float32)  # fmt: skip
    defined, symmetric = features.chi_defined, features.pi_symmetric
    step(0.45, f"Sampling {n_samples} conformations per residue, selecting distinct ones")
    samples = sample_chis(mix, symmetric, n_samples=n_samples, seed=seed, temperature=temperature)
    selecting = ticker(progress, 0.45, 0.6, "Selecting distinct conformers", "residues")
    selection = select_conformers(mix, defined, symmetric, N_PROPOSED, seed=seed, tick=selecting)
    score = flexibility_score(mix, defined, symmetric, p_flexible)
    proposed = selection
    if conformers == "iid":
        clustering = ticker(progress, 0.6, 0.65, "Clustering the draws", "residues")
        proposed = iid_selection(samples, defined, symmetric, tick=clustering)
    prior = _prior_draws(model, features, symmetric, seed)
    step(0.65, "Building the multiconformer model and checking clashes")
    building = ticker(progress, 0.65, 0.95, "Building the multiconformer model", "side chains")
    scans = None if evidence is None else evidence.scans  # the map's proposals start from them
    multi = build_multiconformer(parsed, proposed, score, options, prior_draws=prior, maps=maps,
                                 tick=building, scans=scans)  # fmt: skip
    table = flexibility_table(
        features, mix, residue_entropy=selection.entropy, score=score, p_flexible=p_flexible
    )
    if evidence is not None:
        add_map_columns(table, p_network, evidence)
    written = {i: len(c) for i, c in multi.conformers.items()}
    clashed: dict[int, int] = {}
    for r in multi.rows:
        if r["status"] == "rejected: clash":
            clashed[r["index"]] = clashed.get(r["index"], 0) + 1
    # Residues whose input altlocs are kept hold the input's side-chain conformers in the file.
    kept = options.input_altlocs == "keep"
    for row in table:
        row["n_conformers"] = written.get(row["index"], row["n_obs"] if kept else 1)
        row["rejected_clash"] = clashed.get(row["index"], 0)
    step(1.0, "Done")
    return Prediction(
        parsed,
        features,
        mix,
        table,
        samples,
        selection,
        selection.entropy,
        score,
        multi,
        prep.source_name,
        p_flexible,
        maps=maps,
        evidence=evidence,
        p_network=p_network,
        map_head=prep.map_head,
    )


def model_has_no_flex_head(model) -> bool:
    """Weights without a flexibility head (p_flexible None): nothing for a map to refine."""
    return getattr(model, "flex", True) is None


def _map_step(map_file, map_name, from_data: bool) -> str:
    """The progress line of reading a map: computing maps from data (servalcat) takes long."""
    from .density import labels

    computing = "Reading the map: computing 2mFo-DFc and mFo-DFc from the data (5-25 s)"
    name = map_name or (Path(map_file).name if isinstance(map_file, (str, Path)) else "")
    if ".mtz" not in name.lower():
        return "Reading the map"
    if from_data:
        return computing
    if not isinstance(map_file, (str, Path)):
        return "Reading the map (5-25 s where it holds observed data only: the maps are computed)"
    try:  # the header says whether the file holds map coefficients
        columns = {
            c.label: c.type for c in gemmi.read_mtz_file(str(map_file), with_data=False).columns
        }
    except (RuntimeError, ValueError, OSError):
        return "Reading the map"  # read_maps says what is wrong with it
    return "Reading the map" if labels.pick_pair(columns, labels.TWO_FOFC_LABELS) else computing


def _prior_draws(model, features: Features, symmetric, seed: int) -> torch.Tensor | None:
    """[C, N, D] draws of the weights' backbone-dependent rotamer library (model/prior.py), the
    evidence-free floor of the input side chain's occupancy; None for weights without one."""
    prior = getattr(getattr(model, "head", None), "prior", None)
    if prior is None:
        return None
    lib = prior.library(features.to(next(prior.buffers()).device))
    lib = Mixture(*(t.detach().float().cpu() for t in lib))
    g = torch.Generator().manual_seed(seed)
    return sample(lib, N_CANDIDATES, symmetric.cpu(), generator=g)[0]


def mixture_json(pred: Prediction, weights_name: str) -> dict:
    """The mixture of every residue with at least one χ (format "qfitlatent.mixture/1").

    Unused χ slots (past the residue's n_chi) still hold the network's numbers.
    """
    f, mix = pred.features, pred.mixture
    weights = torch.softmax(mix.logits.double(), -1)
    n_chi = f.chi_defined.sum(-1)
    out = []
    for i in torch.nonzero(n_chi > 0).flatten().tolist():
        out.append(
            {
                **f.residue_id(i).fields(),
                "resname": f.resname[i],
                "n_chi": int(n_chi[i]),
                "weights": weights[i].tolist(),
                "mu": mix.mu[i].double().tolist(),
                "kappa": mix.kappa[i].double().tolist(),
                "entropy": float(pred.entropy[i]),
                # SPEC §5b; null for weights without a flexibility head
                "p_flexible": None if pred.p_flexible is None else float(pred.p_flexible[i]),
                **_map_fields(pred, i),
            }
        )
    doc = {
        "format": MIXTURE_FORMAT,
        "structure": pred.source_name,
        "weights": weights_name,
        # report.csv's structure-level numbers, and how the PDB file names long chains
        "multiconformer": {**report_summary(pred.multiconformer), **pdb_note(pred)},
        "residues": out,
    }
    if pred.maps is not None:  # only with a map: without one the file is as before
        doc["map"] = map_summary(pred)
    return doc


def map_summary(pred: Prediction) -> dict:
    """mixture.json's "map" entry: where the map came from, how well the model fits the data
    (where the maps were computed here), which head combined it with the network."""
    m = pred.maps
    return {
        "source": m.source,
        "difference_map": m.fofc is not None,
        "r_work": m.r_work,
        "r_free": m.r_free,
        "residues_called_from_map": int(pred.evidence.scanned.sum()),
        "head_trained_on": pred.map_head.trained_on,
    }


def _map_fields(pred: Prediction, i: int) -> dict:
    """With a map: the network's p_flexible (the prior) and where residue i's call comes from."""
    if pred.maps is None:
        return {}
    return {
        "p_flexible_network": float(pred.p_network[i]),
        "call_from": "map" if pred.evidence.scanned[i] else "model",
    }


def pdb_note(pred: Prediction) -> dict:
    """{"pdb_chain_names": {mmCIF name: PDB name}} where chain names are too long for PDB, or
    {"pdb_not_written": why} where even renamed they do not fit; {} where all fits."""
    try:
        chain_map = build.pdb_chain_map(pred.multiconformer.structure)
    except build.ChainNamesError as err:
        return {"pdb_not_written": f"{err}: the mmCIF files hold the model"}
    return {"pdb_chain_names": chain_map} if chain_map else {}


def multiconformer_pdb(pred: Prediction) -> str:
    """multiconformer.pdb: the altloc model for refinement, its REMARKs first. Chains whose
    names are too long for PDB get one-character names; a REMARK maps them back. Raises
    build.ChainNamesError where they cannot (`outputs` then leaves the PDB files out)."""
    import textwrap

    st = pred.multiconformer.structure
    chain_map = build.pdb_chain_map(st)
    renamed = [f"chain {short} is chain {long} of the mmCIF file"
               for long, short in chain_map.items()]  # fmt: skip
    lines = [w for line in [*_remark_lines(pred), *renamed] for w in textwrap.wrap(line, 69)]
    remarks = "".join(f"REMARK 250 {w:<69}\n" for w in lines)  # 80 columns, as PDB lines are
    return remarks + build.to_pdb(st, chain_map)


def multiconformer_cif(pred: Prediction) -> str:
    """multiconformer.cif: the same model; the REMARKs go into _pdbx_database_remark."""
    doc = pred.multiconformer.structure.make_mmcif_document()
    loop = doc.sole_block().init_loop("_pdbx_database_remark.", ["id", "text"])
    for k, line in enumerate(_remark_lines(pred), start=1):
        loop.add_row([str(250 + k), gemmi.cif.quote(line)])
    return doc.as_string()


def _remark_lines(pred: Prediction) -> list[str]:
    m = pred.multiconformer
    return [
        "qfitlatent multiconformer model: the input side chain is altloc A, predicted "
        "alternatives B, C",
        *m.remarks,
        f"{m.n_split} residues split; expected flexible residues {m.expected_flexible:.1f}",
    ]


def samples_structure(pred: Prediction) -> gemmi.Structure:
    """S models, each the whole structure with one iid-sampled conformer per residue."""
    return build.samples_model(pred.parsed, pred.samples)


def output_name(pred: Prediction, kind: str) -> str:
    """File name of one output: "<structure>_<OUTPUT_FILES[kind]>", e.g. "1atg_report.csv", so
    files from several structures never overwrite each other in one downloads folder."""
    return f"{pred.parsed.name}_{OUTPUT_FILES[kind]}"


def outputs(pred: Prediction, weights_name: str, tick: Tick = no_tick) -> dict[str, bytes]:
    """Every output file, {file name: bytes} in OUTPUT_FILES order: what `qfitlatent predict`
    writes and what the app offers for download, from this one function. The two PDB files are
    left out only where the chains cannot be named in PDB (over 62 with long names); the
    mmCIF files always hold the model, and mixture.json says why.

    `weights_name` is `checkpoint.weights_label(path)` of the weights used (mixture.json says it).
    `tick(done, total)` hears each file made (seconds each on tens of thousands of residues).
    """
    st = samples_structure(pred)  # built once for both formats
    makers = {
        "cif": lambda: multiconformer_cif(pred),
        "samples_cif": lambda: build.to_cif(st),
        "report": lambda: report_csv(pred.multiconformer),
        "table": lambda: _table_csv(pred.table),
        "mixture": lambda: json.dumps(mixture_json(pred, weights_name), indent=1) + "\n",
    }
    # PDB where the format can hold the chains (mixture.json says why not, otherwise).
    if "pdb_not_written" not in pdb_note(pred):
        makers["pdb"] = lambda: multiconformer_pdb(pred)
        makers["samples_pdb"] = lambda: build.to_pdb(st, build.pdb_chain_map(st))
    texts = {}
    for done, (kind, make) in enumerate(makers.items()):
        tick(done, len(makers))
        texts[kind] = make()
    tick(len(makers), len(makers))
    return {output_name(pred, kind): texts[kind].encode() for kind in OUTPUT_FILES
            if kind in texts}  # fmt: skip


def write_outputs(
    pred: Prediction, out_dir, weights_name: str, overwrite: bool = False
) -> dict[str, Path]:
    """Every file of `outputs` as the folder `out_dir`, whole or not at all (outdir.write_folder:
    never over earlier results unless `overwrite`); {file name: path}."""
    from .outdir import write_folder

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    return write_folder(out_dir, outputs(pred, weights_name), overwrite=overwrite)


def residue_conformers(pred: Prediction, residue_index: int) -> list[tuple[str, float, dict]]:
    """The conformers of one residue as multiconformer.pdb holds them, for drawing.

    Returns one (altloc label, occupancy, {atom name: [3] numpy array, Å}) per conformer:
    A (the input side chain), then the predicted alternatives. A residue we did not split gives
    one entry, label "", its input side chain. Atoms are the whole residue (backbone, CB and side
    chain, names as in the file: MSE keeps SE); the backbone is the same in every conformer.
    """
    rec = pred.parsed.residues[residue_index]
    back = residues.file_atom_names(rec.resname)
    written = pred.multiconformer.conformers.get(residue_index)
    if not written:
        atoms = build.base_atoms(rec)
        return [("", 1.0, {back.get(n, n): x.numpy() for n, x in atoms.items()})]
    chi = torch.stack([c for _, _, c in written])  # [M, D]
    out = []
    for (label, occ, _), atoms in zip(written, build.conformer_atoms(rec, chi), strict=True):
        out.append((label, float(occ), {back.get(n, n): x.numpy() for n, x in atoms.items()}))
    out[0] = (out[0][0], out[0][1], {back.get(n, n): x.numpy()
                                     for n, x in build.base_atoms(rec).items()})  # fmt: skip
    return out


def residue_proposals(pred: Prediction, i: int) -> list[tuple[str, float, dict, bool]]:
    """What the app draws for residue i: (label, occupancy or mass, atoms, written?).

    A split residue gives its predicted alternatives as written (B, C, …; A is the input side
    chain, drawn as observed). Any other rebuildable residue gives the selector's conformers
    (labelled 1, 2, … with their mixture mass, up to the maximum number of conformers), which
    the multiconformer model did not write. Residues that cannot be rebuilt give none.
    """
    if i in pred.multiconformer.conformers:
        return [(lab, occ, atoms, True) for lab, occ, atoms in residue_conformers(pred, i)[1:]]
    rec = pred.parsed.residues[i]
    if not build.rebuildable(rec):
        return []
    chi, mass = pred.selection.conformers(i)
    m = pred.multiconformer.options.max_conformers
    chi, mass = chi[:m], mass[:m]
    back = residues.file_atom_names(rec.resname)
    return [
        (str(k + 1), float(o), {back.get(n, n): x.numpy() for n, x in atoms.items()}, False)
        for k, (o, atoms) in enumerate(zip(mass, build.conformer_atoms(rec, chi), strict=True))
    ]
