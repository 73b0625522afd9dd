"""Baselines the model is scored against, fitted on the training split only.

Three χ baselines, each returning one `Mixture` per residue so the metrics score them exactly
like the model:

- `UniformBaseline`: the uniform density on every χ (NLL = D·log 2π).
- `library.PerResidueTypeMixture` ("per_aa") and `library.BackboneDependentMixture`
  ("bb_dependent"): the rotamer library, the same fit the network's prior starts from.

Two flexibility-only baselines predict p_flexible and nothing about χ, trained on the residues
and labels the model's flexibility head trains on (`loss.flex_labels`):

- `ResidueTypeRate`: the share of flexible residues per amino acid.
- `LogisticFlexibility`: logistic regression on residue type and Cβ burial counts.
"""

from dataclasses import dataclass

import torch

from .. import residues
from ..features import Features
from ..library import (
    BackboneDependentMixture,
    LibraryOptions,
    PerResidueTypeMixture,
    training_samples,
)
from ..loss import flex_labels
from ..mixture import Mixture, uniform_mixture

# ---------------------------------------------------------------- the three baselines


class UniformBaseline:
    """Uniform density on every χ: the floor any model must beat (D·log 2π nats per residue)."""

    name = "uniform"

    def predict(self, feats: Features) -> Mixture:
        return uniform_mixture(feats.n_res, 1)


def fit_baselines(train: list[Features], options: LibraryOptions | None = None) -> dict:
    """The three SPEC §8 baselines fitted on `train`: {"uniform", "per_aa", "bb_dependent"}."""
    o = options or LibraryOptions()
    samples = training_samples(train, o.min_altlocs)
    per_aa = PerResidueTypeMixture.fit(samples, o.n_components, o.n_iter, o.seed, o.pseudo_count)
    bb = BackboneDependentMixture.fit(samples, per_aa, o.bin_deg, o.prior_strength)
    return {"uniform": UniformBaseline(), "per_aa": per_aa, "bb_dependent": bb}


# ---------------------------------------------------------------- flexibility-only baselines


TOKEN_NAMES = (*residues.AA3, "UNK")  # [21] names of the residue tokens


@dataclass
class FlexRows:
    """One row per labelled residue (loss.flex_labels), pooled over structures (M rows)."""

    aatype: torch.Tensor  # [M] long
    burial: torch.Tensor  # [M, 3] Features.burial counts
    label: torch.Tensor  # [M] float, 1 = ≥ 2 distinct side-chain conformers


def flex_rows(feats: list[Features]) -> FlexRows:
    """The residues the flexibility head trains on, with the same label and mask rule."""
    parts = []
    for f in feats:
        label, mask = flex_labels(f)  # [N], [N]
        parts.append((f.aatype[mask], f.burial[mask].float(), label[mask].float()))
    if not parts:
        raise ValueError("no training structures to fit the flexibility baselines on")
    return FlexRows(*(torch.cat(p) for p in zip(*parts, strict=True)))


class ResidueTypeRate:
    """p_flexible = the share of flexible residues of the same amino acid in the training split.

    A type with no labelled training residue gets the overall share.
    """

    name = "residue_type"

    def __init__(self, rate: torch.Tensor):
        self.rate = rate  # [21]

    @classmethod
    def fit(cls, rows: FlexRows):
        n = torch.zeros(residues.N_TOKENS, dtype=torch.float64).index_add_(
            0, rows.aatype, torch.ones_like(rows.label, dtype=torch.float64)
        )
        pos = torch.zeros_like(n).index_add_(0, rows.aatype, rows.label.double())
        overall = float(rows.label.double().mean()) if len(rows.label) else 0.0
        return cls(torch.where(n > 0, pos / n.clamp_min(1), overall).float())

    def predict_flex(self, feats: Features) -> torch.Tensor:
        """[N] flexibility score (a probability)."""
        return self.rate[feats.aatype]

    def to_dict(self) -> dict:
        return {"rate": dict(zip(TOKEN_NAMES, self.rate.tolist(), strict=True))}


def fit_logistic(
    x: torch.Tensor,  # [M, P]
    y: torch.Tensor,  # [M] in {0, 1}
    l2: float,
    penalized: torch.Tensor,  # [P] bool, the weights the L2 term applies to
    n_iter: int = 50,
) -> torch.Tensor:
    """w [P] minimising mean BCE(σ(x w), y) + l2/2 Σ_penalized w² (Newton, float64).

    Newton with a backtracking line search: deterministic, and exact to ~1e-10 in a few steps on
    the ~25 parameters here. The penalty keeps the Hessian positive definite even where one-hot
    columns sum to the intercept or a residue type is absent.
    """
    x, y = x.double(), y.double()
    pen = penalized.double() * l2  # [P]
    m = x.shape[0]

    def objective(w):
        z = x @ w
        return float((torch.nn.functional.softplus(z) - y * z).mean() + 0.5 * (pen * w**2).sum())

    w = torch.zeros(x.shape[1], dtype=torch.float64)
    f = objective(w)
    for _ in range(n_iter):
        p = torch.sigmoid(x @ w)  # [M]
        grad = x.T @ (p - y) / m + pen * w  # [P]
        if float(grad.abs().max()) < 1e-10:
            break
        hess = (x.T * (p * (1 - p))) @ x / m + torch.diag(pen)  # [P, P]
        hess = hess + 1e-12 * torch.eye(len(w), dtype=torch.float64)
        step = torch.linalg.solve(hess, grad)
        t = 1.0
        while t > 1e-10:  # Armijo backtracking: a full Newton step can overshoot far from w*
            f_new = objective(w - t * step)
            if f_new <= f - 1e-4 * t * float(grad @ step):
                break
            t /= 2
        w, f = w - t * step, f_new
    return w


BURIAL_NAMES = ("cb_within_8", "cb_within_10", "ca_half_sphere_13")  # geometry.burial_counts


class LogisticFlexibility:
    """Logistic regression of flexibility on residue type (one-hot) and Cβ burial counts.

    Inputs: an intercept, 21 one-hot residue types, and log(1 + count) of the three
    `Features.burial` counts standardised on the training rows (so one L2 strength fits both
    kinds of input). Fitted on the training split; the intercept is not penalised.
    """

    name = "logistic"

    def __init__(self, weight: torch.Tensor, mean: torch.Tensor, std: torch.Tensor):
        self.weight = weight  # [1 + 21 + 3] float64
        self.mean, self.std = mean, std  # [3] of log1p(burial) on the training rows

    @staticmethod
    def design(aatype, burial, mean, std) -> torch.Tensor:
        """[M, 25]: intercept, one-hot residue type, standardised log1p burial."""
        one_hot = torch.nn.functional.one_hot(aatype, residues.N_TOKENS).double()  # [M, 21]
        b = (torch.log1p(burial.double()) - mean) / std  # [M, 3]
        return torch.cat([torch.ones(len(aatype), 1, dtype=torch.float64), one_hot, b], -1)

    @classmethod
    def fit(cls, rows: FlexRows, l2: float = 1e-3):
        logb = torch.log1p(rows.burial.double())  # [M, 3]
        mean, std = logb.mean(0), logb.std(0).clamp_min(1e-6)
        x = cls.design(rows.aatype, rows.burial, mean, std)
        penalized = torch.ones(x.shape[1], dtype=torch.bool)
        penalized[0] = False
        return cls(fit_logistic(x, rows.label, l2, penalized), mean, std)

    def predict_flex(self, feats: Features) -> torch.Tensor:
        """[N] p_flexible."""
        x = self.design(feats.aatype, feats.burial, self.mean, self.std)
        return torch.sigmoid(x @ self.weight).float()

    def to_dict(self) -> dict:
        """The fitted weights by name (burial ones per standard deviation of log1p count)."""
        names = ["intercept", *TOKEN_NAMES, *BURIAL_NAMES]
        return {"weight": dict(zip(names, self.weight.tolist(), strict=True))}


FLEX_L2 = 1e-3  # L2 on the mean BCE: ~1 pseudo-residue per 1,000 rows, a guard, not a prior


def fit_flex_baselines(train: list[Features], l2: float = FLEX_L2) -> dict:
    """The flexibility-only baselines fitted on `train`: {"residue_type", "logistic"}."""
    rows = flex_rows(train)
    return {
        "residue_type": ResidueTypeRate.fit(rows),
        "logistic": LogisticFlexibility.fit(rows, l2),
    }
