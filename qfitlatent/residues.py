"""Residue tables: amino-acid tokens, χ atom names, π-symmetric χ, modified-residue parents.

Everything here is data. χ atoms follow SPEC §6 (IUPAC order, the one `gemmi.calculate_dihedral`
gives the usual g+ ≈ +60°, t ≈ 180°, g− ≈ −60° for).
"""

import functools

# AlphaFold2 order; token 20 is "anything else".
AA3 = (
    "ALA", "ARG", "ASN", "ASP", "CYS", "GLN", "GLU", "GLY", "HIS", "ILE",
    "LEU", "LYS", "MET", "PHE", "PRO", "SER", "THR", "TRP", "TYR", "VAL",
)  # fmt: skip
AA1 = "ARNDCQEGHILKMFPSTWYV"
UNK = 20
N_TOKENS = 21
TOKEN = {name: i for i, name in enumerate(AA3)}
N_CHI_MAX = 4

BACKBONE_ATOMS = ("N", "CA", "C", "O", "OXT")

CHI_ATOMS: dict[str, list[tuple[str, str, str, str]]] = {
    "ALA": [],
    "ARG": [("N", "CA", "CB", "CG"), ("CA", "CB", "CG", "CD"), ("CB", "CG", "CD", "NE"),
            ("CG", "CD", "NE", "CZ")],
    "ASN": [("N", "CA", "CB", "CG"), ("CA", "CB", "CG", "OD1")],
    "ASP": [("N", "CA", "CB", "CG"), ("CA", "CB", "CG", "OD1")],
    "CYS": [("N", "CA", "CB", "SG")],
    "GLN": [("N", "CA", "CB", "CG"), ("CA", "CB", "CG", "CD"), ("CB", "CG", "CD", "OE1")],
    "GLU": [("N", "CA", "CB", "CG"), ("CA", "CB", "CG", "CD"), ("CB", "CG", "CD", "OE1")],
    "GLY": [],
    "HIS": [("N", "CA", "CB", "CG"), ("CA", "CB", "CG", "ND1")],
    "ILE": [("N", "CA", "CB", "CG1"), ("CA", "CB", "CG1", "CD1")],
    "LEU": [("N", "CA", "CB", "CG"), ("CA", "CB", "CG", "CD1")],
    "LYS": [("N", "CA", "CB", "CG"), ("CA", "CB", "CG", "CD"), ("CB", "CG", "CD", "CE"),
            ("CG", "CD", "CE", "NZ")],
    "MET": [("N", "CA", "CB", "CG"), ("CA", "CB", "CG", "SD"), ("CB", "CG", "SD", "CE")],
    "PHE": [("N", "CA", "CB", "CG"), ("CA", "CB", "CG", "CD1")],
    "PRO": [("N", "CA", "CB", "CG"), ("CA", "CB", "CG", "CD")],
    "SER": [("N", "CA", "CB", "OG")],
    "THR": [("N", "CA", "CB", "OG1")],
    "TRP": [("N", "CA", "CB", "CG"), ("CA", "CB", "CG", "CD1")],
    "TYR": [("N", "CA", "CB", "CG"), ("CA", "CB", "CG", "CD1")],
    "VAL": [("N", "CA", "CB", "CG1")],
}  # fmt: skip

# χ whose two orientations (χ and χ+π) are the same structure: symmetric carboxylates and rings.
PI_SYMMETRIC: dict[str, tuple[bool, bool, bool, bool]] = {
    "ASP": (False, True, False, False),
    "GLU": (False, False, True, False),
    "PHE": (False, True, False, False),
    "TYR": (False, True, False, False),
}
NO_SYMMETRY = (False, False, False, False)

# Side-chain heavy atoms per residue, in build order (the order a χ rotation moves them).
SIDECHAIN_ATOMS: dict[str, tuple[str, ...]] = {
    "ALA": ("CB",),
    "ARG": ("CB", "CG", "CD", "NE", "CZ", "NH1", "NH2"),
    "ASN": ("CB", "CG", "OD1", "ND2"),
    "ASP": ("CB", "CG", "OD1", "OD2"),
    "CYS": ("CB", "SG"),
    "GLN": ("CB", "CG", "CD", "OE1", "NE2"),
    "GLU": ("CB", "CG", "CD", "OE1", "OE2"),
    "GLY": (),
    "HIS": ("CB", "CG", "ND1", "CD2", "CE1", "NE2"),
    "ILE": ("CB", "CG1", "CG2", "CD1"),
    "LEU": ("CB", "CG", "CD1", "CD2"),
    "LYS": ("CB", "CG", "CD", "CE", "NZ"),
    "MET": ("CB", "CG", "SD", "CE"),
    "PHE": ("CB", "CG", "CD1", "CD2", "CE1", "CE2", "CZ"),
    "PRO": ("CB", "CG", "CD"),
    "SER": ("CB", "OG"),
    "THR": ("CB", "OG1", "CG2"),
    "TRP": ("CB", "CG", "CD1", "CD2", "NE1", "CE2", "CE3", "CZ2", "CZ3", "CH2"),
    "TYR": ("CB", "CG", "CD1", "CD2", "CE1", "CE2", "CZ", "OH"),
    "VAL": ("CB", "CG1", "CG2"),
}

# Modified residues whose side chain is the parent's up to renamed atoms. gemmi knows the
# parent of many more, but only these keep χ atoms we can name; the rest get their parent's
# token with χ from whatever atoms of the parent's names are present.
ATOM_RENAMES: dict[str, dict[str, str]] = {
    "MSE": {"SE": "SD"},  # selenomethionine: Se in place of S, same χ1–χ3
}


def file_atom_names(resname: str) -> dict[str, str]:
    """Parent atom name -> the name the file uses, for a modified residue ({"SD": "SE"} for MSE);
    empty for every other residue."""
    return {parent: own for own, parent in ATOM_RENAMES.get(resname, {}).items()}


def element_of(atom_name: str) -> str:
    """Element symbol of a protein heavy atom from its name: the first letter, except selenium
    (MSE's SE), the only two-letter element among the residues qfitlatent reads."""
    return "SE" if atom_name.startswith("SE") else atom_name[0]


def token(resname: str) -> int:
    """Token of a standard residue name, UNK for anything else."""
    return TOKEN.get(resname, UNK)


def n_chi(resname: str) -> int:
    """How many χ the residue type defines (0 for GLY, ALA and unknown types)."""
    return len(CHI_ATOMS.get(resname, ()))


def pi_symmetric(resname: str) -> tuple[bool, bool, bool, bool]:
    """Per-χ flags: True where χ and χ+π are the same structure."""
    return PI_SYMMETRIC.get(resname, NO_SYMMETRY)


@functools.cache
def chi_table_tensors():
    """[21, 4] n_chi-style mask and π-symmetry flags per token, for batched lookups.

    Built once: the loss and the metrics look these up for every structure. Callers index the
    tables (which copies) and must not write into them.
    """
    import torch

    defined = torch.zeros(N_TOKENS, N_CHI_MAX, dtype=torch.bool)
    symmetric = torch.zeros(N_TOKENS, N_CHI_MAX, dtype=torch.bool)
    for i, name in enumerate(AA3):
        defined[i, : n_chi(name)] = True
        symmetric[i] = torch.tensor(pi_symmetric(name))
    return defined, symmetric
