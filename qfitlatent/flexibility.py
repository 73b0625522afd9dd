"""Per-residue flexibility summary: which side chains the model thinks move, ranked.

Columns, for every residue with at least one χ:
- flexibility: the score residues are ranked by and split at (`conformers.flexibility_score`):
  the network's p_flexible where the weights have a flexibility head, else the mixture weight on
  conformers other than the dominant one.
- p_flexible: the probability of ≥ 2 conformers (SPEC §5b): the network's, or with a map the
  posterior given the network and the map; blank without the head.
- entropy: differential entropy of the mixture over the residue's defined χ (nats, Monte Carlo,
  `mixture.entropy`). Higher means a broader or more multimodal density. It sums over χ, so a
  four-χ lysine and a one-χ serine are on different scales; rank within a type where that matters.
- entropy_per_chi: entropy / n_chi, which takes the χ count out of the comparison (roughly).
- n_modes: mixture components with weight ≥ the threshold (default 0.1).
- chi1_spread_deg: circular standard deviation of the χ1 marginal, sqrt(−2 ln R), computed
  exactly from the mixture: R = |Σ_k π_k A(κ_k) e^{iμ_k}| with A(κ) = I1(κ)/I0(κ).
- n_obs: side-chain conformers observed in the input (1 without altlocs).

With a map (`predict(..., map_file=...)`), after those (MAP_COLUMNS; absent without a map, so
those files are as before):
- call_from: "map" where the map speaks for the residue (its p_flexible is the posterior of
  the network and the map), "model" where it does not (no χ1, truncated, outside the map: the
  network's value stands).
- p_flexible_network: the network's own p_flexible, the prior the map updated.
- the map's numbers in σ (density.residue_evidence.FEATURES; blank where the map says nothing).
"""

import csv
import io
import math

import torch

from .density.residue_evidence import FEATURES, ResidueEvidence
from .features import Features
from .mixture import Mixture, entropy, resultant_length

COLUMNS = (
    "rank",
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
)
MAP_COLUMNS = ("call_from", "p_flexible_network", *FEATURES)
MODE_WEIGHT = 0.1  # a component counts as a mode from this weight on


def chi1_spread(mix: Mixture) -> torch.Tensor:
    """Circular standard deviation of each residue's χ1 marginal in degrees, [N].

    The mixture's first trigonometric moment is Σ_k π_k A(κ_k1) e^{iμ_k1}, A(κ) = I1(κ)/I0(κ),
    computed with the exponentially scaled Bessel functions so large κ stays finite.
    """
    w = torch.softmax(mix.logits.double(), -1)  # [N, K]
    mu, kappa = mix.mu[..., 0].double(), mix.kappa[..., 0].double()  # [N, K]
    a = resultant_length(kappa)
    re = (w * a * torch.cos(mu)).sum(-1)
    im = (w * a * torch.sin(mu)).sum(-1)
    r = torch.sqrt(re**2 + im**2).clamp(1e-300, 1.0)
    return torch.rad2deg(torch.sqrt(-2.0 * torch.log(r))).float()


def n_modes(mix: Mixture, threshold: float = MODE_WEIGHT) -> torch.Tensor:
    """Components per residue whose weight is at least `threshold`, [N] long."""
    return (torch.softmax(mix.logits, -1) >= threshold).sum(-1)


def flexibility_table(
    features: Features,
    mix: Mixture,  # logits [N, K], mu/kappa [N, K, D]
    residue_entropy: torch.Tensor | None = None,  # [N]; computed here when not given
    threshold: float = MODE_WEIGHT,
    score: torch.Tensor | None = None,  # [N] flexibility score; computed here when not given
    p_flexible: torch.Tensor | None = None,  # [N] the network's, None without the head
) -> list[dict]:
    """One row per residue with at least one χ, most flexible (highest score) first; ties go
    to the higher entropy.

    Each row also carries `index`, the residue's position in `features`, so callers can go from
    a row back to the residue.
    """
    from .ensemble.conformers import flexibility_score

    defined = features.chi_defined  # [N, D]
    if residue_entropy is None:
        residue_entropy = entropy(mix, defined, features.pi_symmetric)
    if score is None:
        score = flexibility_score(mix, defined, features.pi_symmetric, p_flexible)
    modes = n_modes(mix, threshold)
    spread = chi1_spread(mix)
    rows = []
    for i in torch.nonzero(defined.any(-1)).flatten().tolist():
        rows.append(
            {
                **features.residue_id(i).fields(),
                "resname": features.resname[i],
                "n_chi": int(defined[i].sum()),
                "flexibility": round(float(score[i]), 4),
                "p_flexible": math.nan if p_flexible is None else round(float(p_flexible[i]), 4),
                "entropy": round(float(residue_entropy[i]), 4),
                "entropy_per_chi": round(float(residue_entropy[i]) / int(defined[i].sum()), 4),
                "n_modes": int(modes[i]),
                "chi1_spread_deg": round(float(spread[i]), 2),
                "n_obs": int(features.n_obs[i]),
                "index": i,
            }
        )
    rows.sort(key=lambda r: (-r["flexibility"], -r["entropy"], r["index"]))
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    return rows


def add_map_columns(rows: list[dict], p_network: torch.Tensor, evidence: ResidueEvidence):
    """The MAP_COLUMNS of each row (in place), from the network's p_flexible [N] and the map's
    evidence for the same N residues."""
    scanned = evidence.scanned
    for row in rows:
        i = row["index"]
        row["call_from"] = "map" if scanned[i] else "model"
        row["p_flexible_network"] = round(float(p_network[i]), 4)
        for name, value in zip(FEATURES, evidence.features[i].tolist(), strict=True):
            row[name] = round(value, 3)


def table_csv(rows: list[dict]) -> str:
    """The table as CSV text: the COLUMNS first, the MAP_COLUMNS where the rows have them, then
    any extra keys the rows carry."""
    first = rows[0] if rows else {}
    mapped = [k for k in MAP_COLUMNS if k in first]
    extra = [k for k in first if k not in COLUMNS and k not in MAP_COLUMNS and k != "index"]
    out = io.StringIO()
    writer = csv.DictWriter(
        out, fieldnames=[*COLUMNS, *mapped, *extra], extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        )
    return out.getvalue()
