"""Names a crystallographer uses for χ: wells (p, t, m), rotamer-library names ("mt−80") and
the named, weighted components a χ plot shows."""

import math

import numpy as np


def wrap_deg(deg) -> np.ndarray:
    """Degrees into [−180°, 180°)."""
    return (np.asarray(deg, dtype=float) + 180.0) % 360.0 - 180.0


# χ that end in a planar group (and ARG's χ4) have no g+/t/g− wells; rotamer libraries (Lovell
# et al. 2000, "mt−30") name them by the angle rounded to 10°. Index d of that χ per residue.
NUMERIC_CHI = {"ASN": 1, "ASP": 1, "HIS": 1, "PHE": 1, "TYR": 1, "TRP": 1, "GLN": 2, "GLU": 2,
               "ARG": 3}  # fmt: skip
# A component under this weight is noise for a reader; it still counts in the density.
MIN_COMPONENT_WEIGHT = 0.05
MAX_COMPONENTS_SHOWN = 8


def chi_well(deg: float) -> str:
    """p (g+, 0…120°), t (120…240°) or m (g−, −120…0°) for an sp3 χ in degrees."""
    x = float(wrap_deg(deg))
    return "p" if 0.0 <= x < 120.0 else ("m" if -120.0 <= x < 0.0 else "t")


def rotamer_name(resname: str, chi_deg, pi_symmetric=(False,) * 4) -> str:
    """Rotamer-library name of a χ tuple in degrees: "mt", "mt−80", "p90" (π-symmetric χ folded
    to −90…90°, as its two orientations are one structure)."""
    parts = []
    for d, x in enumerate(chi_deg):
        if NUMERIC_CHI.get(resname) == d:
            x = float(wrap_deg(x))
            if pi_symmetric[d]:
                x = (x + 90.0) % 180.0 - 90.0
            tens = int(math.copysign(math.floor(abs(x) / 10.0 + 0.5), x))  # half away from 0
            parts.append(f"{tens * 10}".replace("-", "−"))
        else:
            parts.append(chi_well(x))
    return "".join(parts)


def component_names(resname, mu_deg, weights, pi_symmetric, n_chi) -> dict[int, str]:
    """{component: "mt−80 · 41%"} for the components worth showing, heaviest first; a name two
    components share gets a counter ("mt (2) · 12%")."""
    keep = [int(k) for k in np.argsort(-weights) if weights[k] >= MIN_COMPONENT_WEIGHT]
    keep = keep[:MAX_COMPONENTS_SHOWN]
    seen: dict[str, int] = {}
    out = {}
    for k in keep:
        base = rotamer_name(resname, mu_deg[k, :n_chi], pi_symmetric) if n_chi else "—"
        seen[base] = seen.get(base, 0) + 1
        name = base if seen[base] == 1 else f"{base} ({seen[base]})"
        out[k] = f"{name} · {weights[k]:.0%}"
    return out
