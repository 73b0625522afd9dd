"""Which MTZ columns to use, decided from their labels and types alone (pure functions).

Refinement programs name their map coefficients differently: Phenix writes 2FOFCWT/PH2FOFCWT and
FOFCWT/PHFOFCWT, Refmac and servalcat FWT/PHWT and DELFWT/PHDELWT, Buster 2FOFCWT and FOFCWT.
Observed data come as amplitudes (type F with a type-Q sigma) or intensities (type J with Q).
"""

# (amplitude, phase) pairs in order of preference.
TWO_FOFC_LABELS = (
    ("2FOFCWT", "PH2FOFCWT"),
    ("FWT", "PHWT"),
    ("FWT", "PHFWT"),
    ("2FOFCWT_no_fill", "PH2FOFCWT_no_fill"),
)
FOFC_LABELS = (
    ("FOFCWT", "PHFOFCWT"),
    ("DELFWT", "PHDELWT"),
    ("DELFWT", "PHDELFWT"),
)
FREE_FLAG_LABELS = ("FREE", "R-free-flags", "FreeR_flag", "FREER", "RFREE", "FreeRflag")


def pick_pair(columns: dict[str, str], choices) -> tuple[str, str] | None:
    """The first (amplitude, phase) pair of `choices` present as types F and P, else None.

    Args:
        columns: label -> MTZ column type ("F", "P", "Q", "J", "I", ...).
    """
    for amp, phase in choices:
        if columns.get(amp) == "F" and columns.get(phase) == "P":
            return amp, phase
    return None


def pick_observations(columns: dict[str, str]) -> tuple[str, str] | None:
    """(value, sigma) of observed amplitudes, else of intensities; None when the file has neither.

    A sigma column is the value's label with "SIG" in front (FP/SIGFP, IOBS/SIGIOBS,
    F-obs/SIGF-obs) and of type Q. Amplitudes win: they are what was refined against, and a
    French-Wilson step has already handled the weak intensities.
    """
    for kind in ("F", "J"):
        for label, typ in columns.items():
            if typ == kind and columns.get("SIG" + label) == "Q":
                # Calculated amplitudes (FC, F-model) have no sigma, so they never match here.
                return label, "SIG" + label
    return None


def pick_free_flags(columns: dict[str, str]) -> str | None:
    """The R-free flag column (type I), None when there is none."""
    for label in FREE_FLAG_LABELS:
        if columns.get(label) == "I":
            return label
    return None


def describe(columns: dict[str, str]) -> str:
    """ "FP (F), SIGFP (Q), …" without the H, K, L indices: for messages."""
    return ", ".join(f"{k} ({v})" for k, v in columns.items() if v != "H") or "none"
