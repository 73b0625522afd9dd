"""The map head: `p_flexible` given the network's prior and the map's evidence.

The network's `p_flexible` is the prior; the residue's density numbers (`residue_evidence`) are
the evidence. The posterior is a calibrated logistic model on both:

    logit p = w0 · logit(p_network) + Σ_j w_j · (x_j − mean_j) / scale_j + b

fitted on maps synthesised from multiconformer structures (`synthetic.py`, `train/map_head.py`),
never on the real maps it is validated on. A logistic model, not a network: the evidence is a
handful of numbers per residue, the labels a few thousand residues, and its coefficients can be
read (w0 says how far the map may overrule the network). `docs/density.md` has the ablations
(map alone, network alone, both) that chose it.

Two fits, one per kind of map: with a difference map (MTZ) every feature is used; a CCP4/MRC
map gives 2mFo-DFc only. A feature missing for one residue (no δ atom) is read as its
training mean.
"""

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .residue_evidence import (
    DIFFERENCE_FEATURES,
    DIFFERENCE_FEATURES_V1,
    FEATURES,
    FEATURES_V1,
    MAP_FEATURES,
    MAP_FEATURES_V1,
    MODEL_FEATURES,
    NEAR_COPY_FEATURES,
    ResidueEvidence,
)

NETWORK = "network_logit"
FORMAT = "qfitlatent.map-head/1"
P_CLAMP = 1e-4  # logit(p) stays finite for a network that says 0 or 1
WEIGHTS = Path(__file__).resolve().parents[2] / "weights"
V1_PATH = WEIGHTS / "map-head-v1.json"  # synthetic inputs kept the B refined with their altlocs
V2_PATH = WEIGHTS / "map-head-v2.json"  # synthetic inputs' B refined against the data, as a user's
DEFAULT_PATH = V2_PATH  # trained on inputs as users have them (docs/density.md, "The head v2")


@dataclass(frozen=True)
class LogisticFit:
    inputs: tuple[str, ...]  # NETWORK and/or names from FEATURES, in coefficient order
    mean: tuple[float, ...]  # [I] standardisation, from the training rows
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float

    def logit(self, x: np.ndarray) -> np.ndarray:
        """[R] posterior logit for inputs x [R, I] in `inputs` order (NaN: the training mean)."""
        z = (x - np.array(self.mean)) / np.array(self.scale)  # [R, I]
        z = np.where(np.isfinite(z), z, 0.0)
        return z @ np.array(self.coef) + self.intercept


@dataclass(frozen=True)
class MapHead:
    difference: LogisticFit  # maps with mFo-DFc (an MTZ)
    two_fofc_only: LogisticFit  # a CCP4/MRC map: 2mFo-DFc alone
    trained_on: str  # one line: which structures, how the maps were made
    # Fits the shipped one is compared with (posterior.VARIANTS): map alone, network alone, ...
    ablations: dict[str, LogisticFit] = field(default_factory=dict)
    cross_validated_auroc: dict[str, float] = field(default_factory=dict)  # variant -> on synthetic
    # The multiconformer model's split threshold on this head's posterior, chosen on the
    # synthetic rows (train.map_head.choose_threshold); None: keep the network's threshold.
    split_threshold: float | None = None

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"format": FORMAT, **asdict(self)}, indent=1) + "\n")


def load_map_head(path: Path | None = None) -> MapHead:
    d = json.loads(Path(path or DEFAULT_PATH).read_text())
    if d.get("format") != FORMAT:
        raise ValueError(f"{path}: not a qfitlatent map head ({d.get('format')!r})")

    def fit(x: dict) -> LogisticFit:
        return LogisticFit(**{k: tuple(v) if isinstance(v, list) else v for k, v in x.items()})

    return MapHead(
        fit(d["difference"]),
        fit(d["two_fofc_only"]),
        d["trained_on"],
        {k: fit(v) for k, v in d.get("ablations", {}).items()},
        d.get("cross_validated_auroc", {}),
        d.get("split_threshold"),
    )


def uses_near_copy(head: MapHead) -> bool:
    """Whether the head reads any near-copy feature (the shipped v2 does not: not computed)."""
    fits = (head.difference, head.two_fofc_only)
    return any(n in NEAR_COPY_FEATURES for fit in fits for n in fit.inputs)


def network_logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), P_CLAMP, 1 - P_CLAMP)
    return np.log(p / (1 - p))


def inputs(names, p_network: np.ndarray | None, features: np.ndarray) -> np.ndarray:
    """[R, I] the columns `names` of (network logit, FEATURES)."""
    cols = []
    for n in names:
        cols.append(network_logit(p_network) if n == NETWORK else features[:, FEATURES.index(n)])
    return np.stack(cols, axis=-1)


def posterior(head: MapHead, p_network: np.ndarray, evidence: ResidueEvidence) -> np.ndarray:
    """[N] p_flexible given the network and the map; the network's own value where the map
    says nothing about a residue (`evidence.scanned` is False)."""
    fit = head.difference if evidence.has_difference else head.two_fofc_only
    p_network = np.asarray(p_network, dtype=np.float64)
    out = p_network.copy()
    rows = evidence.scanned
    if rows.any():
        x = inputs(fit.inputs, p_network[rows], evidence.features[rows])
        out[rows] = 1.0 / (1.0 + np.exp(-fit.logit(x)))
    return out


def fit_logistic(x: np.ndarray, y: np.ndarray, names, l2: float = 1e-3) -> LogisticFit:
    """Maximum-likelihood logistic regression with a small L2 penalty (LBFGS, float64).

    Args:
        x: [R, I] inputs (NaN allowed: read as the column mean); y: [R] 0/1 labels.
    """
    mean = np.nanmean(x, axis=0)  # [I]
    scale = np.nanstd(x, axis=0)
    scale = np.where(scale > 1e-8, scale, 1.0)
    z = (x - mean) / scale
    z = torch.as_tensor(np.where(np.isfinite(z), z, 0.0), dtype=torch.float64)
    t = torch.as_tensor(y, dtype=torch.float64)
    w = torch.zeros(z.shape[1], dtype=torch.float64, requires_grad=True)
    prior = float(np.clip(np.mean(y), 1e-3, 1 - 1e-3))
    b = torch.tensor(math.log(prior / (1 - prior)), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        logit = z @ w + b
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, t) + l2 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return LogisticFit(
        tuple(names),
        tuple(float(v) for v in mean),
        tuple(float(v) for v in scale),
        tuple(float(v) for v in w.detach()),
        float(b.detach()),
    )


# The inputs of each fit a head may ship, and of the ablations it is compared with. v1 used
# "both" / "both_two_fofc_only"; v2's were chosen from CANDIDATES on synthetic cross-validation
# (train.map_head.choose_fit; docs/density.md, "The head v2").
VARIANTS = {
    "both": (NETWORK, *FEATURES_V1),
    "both_two_fofc_only": (NETWORK, *MAP_FEATURES_V1),
    "map_alone": FEATURES_V1,
    "map_alone_two_fofc_only": MAP_FEATURES_V1,
    "network_alone": (NETWORK,),
    "difference_alone": DIFFERENCE_FEATURES_V1,
    "both_near_copy": (NETWORK, *DIFFERENCE_FEATURES, *MAP_FEATURES),
    "both_two_fofc_only_near_copy": (NETWORK, *MAP_FEATURES),
    "map_alone_near_copy": DIFFERENCE_FEATURES + MAP_FEATURES,
    # issue 22: the model's side-chain B beside the map (B refined without altlocs, bfactor.py)
    "both_b": (NETWORK, *FEATURES_V1, *MODEL_FEATURES),
    "both_two_fofc_only_b": (NETWORK, *MAP_FEATURES_V1, *MODEL_FEATURES),
    "b_alone": MODEL_FEATURES,
    # issue 22 (consistent inputs): the two peaks that need no modelled conformer to compare with
    "both_peaks": (NETWORK, "fofc_peak", "two_fofc_peak"),
    "both_peaks_two_fofc_only": (NETWORK, "two_fofc_peak"),
}
# The fits a head may ship, per kind of map (train.map_head.choose_fit picks one of each): the
# posterior is given the network AND the map, so every candidate has both.
CANDIDATES = {
    "difference": ("both", "both_near_copy", "both_b", "both_peaks"),
    "two_fofc_only": (
        "both_two_fofc_only",
        "both_two_fofc_only_near_copy",
        "both_two_fofc_only_b",
        "both_peaks_two_fofc_only",
    ),
}
