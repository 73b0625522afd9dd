"""Structure in → mixtures, flexibility table, sampled multiconformer model out.

The command line (`qfitlatent predict` / `sample`) and the app both call `predict` and the
writers below, so a file written by either is the same.
"""

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import gemmi
import torch

from . import export
from .checkpoint import resolve_device
from .dataset import list_structure_files
from .errors import CheckpointError, StructureError
from .features import Features, featurize
from .flexibility import flexibility_table
from .flexibility import table_csv as _table_csv
from .mixture import Mixture, entropy
from .sample import MAX_CONFORMERS, SAME_CONFORMER_DEG, Ensemble, sample_chis, sample_ensemble
from .structure import ParsedStructure, read_structure, structure_id

MIXTURE_FORMAT = "qfitlatent.mixture/1"
OUTPUT_FILES = {
    "mixture": "mixture.json",
    "table": "residues.csv",
    "pdb": "ensemble.pdb",
    "cif": "ensemble.cif",
}


@dataclass
class Prediction:
    parsed: ParsedStructure
    features: Features
    mixture: Mixture  # logits [N, K], mu/kappa [N, K, D], CPU float32
    table: list[dict]  # flexibility rows, highest entropy first (see flexibility.py)
    samples: torch.Tensor  # [S, N, D] sampled χ, radians
    ensemble: Ensemble  # distinct conformers per residue with occupancies
    entropy: torch.Tensor  # [N] nats over defined χ (0 where none)
    clashes: list[list[int]]  # per residue, per conformer: moving atoms within 2.5 Å of others
    ensemble_structure: gemmi.Structure  # the multiconformer model that ensemble_pdb/cif write
    source_name: str  # the input's file name ("1abc.pdb.gz"), or the name given for bytes
    # [N] probability that the side chain has >= 2 distinct conformers (SPEC §5b); None for
    # weights without a flexibility head.
    p_flexible: torch.Tensor | None = None


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
    tol_deg: float = SAME_CONFORMER_DEG,
    max_conformers: int = MAX_CONFORMERS,
    progress=None,
) -> Prediction:
    """Predict one structure: `source` is a path, bytes, or an already read ParsedStructure.

    `progress(fraction, text)`, when given, is called before each step (reading, features,
    network, entropy, sampling, building), so a page can show where a long structure is.
    Raises StructureError for input that cannot be used.
    """
    step = progress or (lambda fraction, text: None)
    step(0.0, "Reading the structure")
    parsed = source if isinstance(source, ParsedStructure) else read_structure(source, name=name)
    source_name = name or (Path(source).name if isinstance(source, (str, Path)) else parsed.name)
    n = len(parsed.residues)
    step(0.1, f"Computing features of {n:,} residues")
    features = featurize(parsed)
    device = resolve_device(device)
    model.eval()
    step(0.25, f"Predicting χ mixtures for {n:,} residues")
    out = model(features.to(device))
    mix = Mixture(*(t.detach().float().cpu() for t in out.mixture))
    p_flexible = None if out.flex_logit is None else torch.sigmoid(out.flex_logit.float()).cpu()
    defined, symmetric = features.chi_defined, features.pi_symmetric
    step(0.5, "Estimating each residue's entropy")
    h = entropy(mix, defined, symmetric, seed=seed)
    step(0.6, f"Sampling {n_samples} conformations per residue")
    samples = sample_chis(mix, symmetric, n_samples=n_samples, seed=seed, temperature=temperature)
    rebuildable = torch.tensor([export.rebuildable(r) for r in parsed.residues])
    ensemble = sample_ensemble(samples, defined, symmetric, rebuildable, tol_deg, max_conformers)
    step(0.7, "Building the sampled side chains and checking clashes")
    st, clashes = export.build_model(parsed, ensemble)
    table = flexibility_table(features, mix, residue_entropy=h)
    for row in table:
        i = row["index"]
        row["n_conformers"] = ensemble.n_conformers(i) if rebuildable[i] else 0
        row["clashing_conformers"] = sum(c > 0 for c in clashes[i])
    step(1.0, "Done")
    return Prediction(
        parsed, features, mix, table, samples, ensemble, h, clashes, st, source_name, p_flexible
    )


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
                "chain": f.chain_id[i],
                "resnum": int(f.resnum[i]),
                "icode": f.icode[i],
                "resname": f.resname[i],
                "n_chi": int(n_chi[i]),
                "weights": weights[i].tolist(),
                "mu": mix.mu[i].double().tolist(),
                "kappa": mix.kappa[i].double().tolist(),
                "entropy": float(pred.entropy[i]),
            }
        )
    return {
        "format": MIXTURE_FORMAT,
        "structure": pred.source_name,
        "weights": weights_name,
        "residues": out,
    }


def ensemble_pdb(pred: Prediction) -> str:
    return export.to_pdb(pred.ensemble_structure)


def ensemble_cif(pred: Prediction) -> str:
    return export.to_cif(pred.ensemble_structure)


def table_csv(pred: Prediction) -> str:
    return _table_csv(pred.table)


def write_outputs(pred: Prediction, out_dir, weights_name: str) -> dict[str, Path]:
    """mixture.json, residues.csv, ensemble.pdb and ensemble.cif in `out_dir` (created)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    texts = {
        "mixture": json.dumps(mixture_json(pred, weights_name), indent=1) + "\n",
        "table": table_csv(pred),
        "pdb": ensemble_pdb(pred),
        "cif": ensemble_cif(pred),
    }
    paths = {}
    for key, text in texts.items():
        paths[key] = out_dir / OUTPUT_FILES[key]
        paths[key].write_text(text)
    return paths


def residue_conformers(pred: Prediction, residue_index: int) -> list[tuple[str, float, dict]]:
    """The written conformers of one residue, for drawing them over each other.

    Returns one (altloc label, occupancy, {atom name: [3] numpy array, Å}) per conformer, heaviest
    first. The label is "" for a residue written as a single conformer. Atoms are the whole
    residue (backbone, CB and side chain, names as in the file: MSE keeps SE); the backbone is
    the same in every conformer. Residues kept as observed give their primary input conformer.
    """
    rec = pred.parsed.residues[residue_index]
    back = {v: k for k, v in export.residues.ATOM_RENAMES.get(rec.resname, {}).items()}
    ens = pred.ensemble
    out = []
    for label, occ, atoms in zip(
        ens.labels(residue_index),
        ens.occ[residue_index].tolist(),
        export.conformer_atoms(rec, ens.chi[residue_index]),
        strict=True,
    ):
        out.append((label, float(occ), {back.get(n, n): x.numpy() for n, x in atoms.items()}))
    return out


def predict_from_args(args) -> int:
    """`qfitlatent predict|sample`: every structure given (files or folders) into OUT/<name>/.

    The model is loaded once. A structure that cannot be read is reported and skipped; the exit
    code is 1 when anything was skipped, 0 otherwise.
    """
    from .checkpoint import default_weights, load_model

    weights = Path(args.weights) if args.weights is not None else default_weights()
    if not weights.is_file():
        raise CheckpointError(
            f"no model weights at {weights}; pass --weights PATH to a checkpoint "
            "(train one with `qfitlatent train`)"
        )
    device = resolve_device(args.device)
    model, _ = load_model(weights, device)
    files = []
    for item in args.structures:
        files.extend(list_structure_files(item) if Path(item).is_dir() else [Path(item)])
    skipped = 0
    for path in files:
        try:
            pred = predict(
                model,
                path,
                n_samples=args.samples,
                seed=args.seed,
                temperature=args.temperature,
                device=device,
            )
        except StructureError as err:
            print(f"skipped {path}: {err}", file=sys.stderr)
            skipped += 1
            continue
        out = write_outputs(pred, Path(args.out) / structure_id(path), weights.name)
        top = ", ".join(
            f"{r['chain']}{r['resnum']}{r['icode']} {r['resname']}" for r in pred.table[:5]
        )
        print(
            f"{path.name}: {pred.features.n_res} residues → {out['pdb'].parent}"
            f"  (most flexible: {top})"
        )
    if skipped:
        print(f"{skipped} of {len(files)} structure(s) skipped", file=sys.stderr)
    return 1 if skipped else 0
