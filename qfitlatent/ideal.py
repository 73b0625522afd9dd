"""Ideal side-chain internal coordinates, for building side-chain atoms a file lacks.

Source: Engh & Huber (1991) ideal geometry, as tabulated in AlphaFold2's
`residue_constants.rigid_group_atom_positions` (also in OpenFold). We turned those rigid-group
positions into a Z-matrix: each atom is placed from three atoms already present (a, b, c) with
its bond length |c–atom| (Å), bond angle b–c–atom (degrees) and dihedral a–b–c–atom (degrees).
Where the dihedral is None the atom defines a χ and its dihedral is the χ being built.

`group` says which χ moves the atom: 0 for CB (fixed to the backbone), n for atoms beyond the
χn bond. A χn rotation moves every atom whose group is ≥ n, which is exactly the set of atoms
"beyond" that bond (ILE χ1: CG1, CG2, CD1; ILE χ2: CD1; VAL χ1: CG1, CG2; THR χ1: OG1, CG2).
Rows are in build order: every atom's references come before it.
"""

from typing import NamedTuple


class IdealAtom(NamedTuple):
    name: str
    a: str
    b: str
    c: str
    bond: float  # Å, c–name
    angle: float  # degrees, b–c–name
    torsion: float | None  # degrees, a–b–c–name; None: this atom defines a χ
    group: int  # 0: fixed to the backbone; n: moved by χ1…χn


# fmt: off
IDEAL: dict[str, tuple[IdealAtom, ...]] = {
    "ALA": (
        IdealAtom("CB", "C", "N", "CA", 1.527, 110.40, -122.64, 0),
    ),
    "ARG": (
        IdealAtom("CB", "C", "N", "CA", 1.530, 110.58, -122.44, 0),
        IdealAtom("CG", "N", "CA", "CB", 1.520, 113.90, None, 1),
        IdealAtom("CD", "CA", "CB", "CG", 1.522, 111.75, None, 2),
        IdealAtom("NE", "CB", "CG", "CD", 1.460, 111.66, None, 3),
        IdealAtom("CZ", "CG", "CD", "NE", 1.330, 124.74, None, 4),
        IdealAtom("NH1", "CD", "NE", "CZ", 1.328, 120.70, 0.00, 4),
        IdealAtom("NH2", "CD", "NE", "CZ", 1.325, 119.76, 180.00, 4),
    ),
    "ASN": (
        IdealAtom("CB", "C", "N", "CA", 1.530, 110.54, -123.12, 0),
        IdealAtom("CG", "N", "CA", "CB", 1.516, 112.66, None, 1),
        IdealAtom("OD1", "CA", "CB", "CG", 1.234, 120.87, None, 2),
        IdealAtom("ND2", "OD1", "CB", "CG", 1.328, 116.53, 179.95, 2),
    ),
    "ASP": (
        IdealAtom("CB", "C", "N", "CA", 1.530, 110.54, -122.54, 0),
        IdealAtom("CG", "N", "CA", "CB", 1.519, 112.99, None, 1),
        IdealAtom("OD1", "CA", "CB", "CG", 1.250, 119.21, None, 2),
        IdealAtom("OD2", "OD1", "CB", "CG", 1.250, 118.27, -179.84, 2),
    ),
    "CYS": (
        IdealAtom("CB", "C", "N", "CA", 1.528, 110.53, -122.13, 0),
        IdealAtom("SG", "N", "CA", "CB", 1.806, 113.77, None, 1),
    ),
    "GLN": (
        IdealAtom("CB", "C", "N", "CA", 1.529, 110.57, -122.55, 0),
        IdealAtom("CG", "N", "CA", "CB", 1.523, 113.82, None, 1),
        IdealAtom("CD", "CA", "CB", "CG", 1.517, 112.76, None, 2),
        IdealAtom("OE1", "CB", "CG", "CD", 1.235, 120.88, None, 3),
        IdealAtom("NE2", "OE1", "CG", "CD", 1.329, 116.51, -179.95, 3),
    ),
    "GLU": (
        IdealAtom("CB", "C", "N", "CA", 1.531, 110.57, -122.63, 0),
        IdealAtom("CG", "N", "CA", "CB", 1.522, 113.84, None, 1),
        IdealAtom("CD", "CA", "CB", "CG", 1.520, 113.24, None, 2),
        IdealAtom("OE1", "CB", "CG", "CD", 1.252, 119.00, None, 3),
        IdealAtom("OE2", "OE1", "CG", "CD", 1.251, 118.08, -179.95, 3),
    ),
    "HIS": (
        IdealAtom("CB", "C", "N", "CA", 1.530, 110.50, -122.54, 0),
        IdealAtom("CG", "N", "CA", "CB", 1.496, 113.65, None, 1),
        IdealAtom("ND1", "CA", "CB", "CG", 1.378, 122.68, None, 2),
        IdealAtom("CD2", "ND1", "CB", "CG", 1.354, 131.05, 179.83, 2),
        IdealAtom("CE1", "CB", "CG", "ND1", 1.323, 109.16, 179.91, 2),
        IdealAtom("NE2", "CB", "CG", "CD2", 1.373, 107.21, -179.89, 2),
    ),
    "ILE": (
        IdealAtom("CB", "C", "N", "CA", 1.545, 111.46, -122.49, 0),
        IdealAtom("CG1", "N", "CA", "CB", 1.533, 110.39, None, 1),
        IdealAtom("CG2", "CG1", "CA", "CB", 1.531, 110.65, -123.21, 1),
        IdealAtom("CD1", "CA", "CB", "CG1", 1.523, 113.99, None, 2),
    ),
    "LEU": (
        IdealAtom("CB", "C", "N", "CA", 1.531, 110.50, -122.16, 0),
        IdealAtom("CG", "N", "CA", "CB", 1.529, 116.31, None, 1),
        IdealAtom("CD1", "CA", "CB", "CG", 1.525, 110.34, None, 2),
        IdealAtom("CD2", "CD1", "CB", "CG", 1.525, 110.54, 122.82, 2),
    ),
    "LYS": (
        IdealAtom("CB", "C", "N", "CA", 1.529, 110.55, -122.48, 0),
        IdealAtom("CG", "N", "CA", "CB", 1.522, 114.00, None, 1),
        IdealAtom("CD", "CA", "CB", "CG", 1.523, 111.53, None, 2),
        IdealAtom("CE", "CB", "CG", "CD", 1.523, 111.58, None, 3),
        IdealAtom("NZ", "CG", "CD", "CE", 1.494, 111.77, None, 4),
    ),
    "MET": (
        IdealAtom("CB", "C", "N", "CA", 1.530, 110.60, -122.32, 0),
        IdealAtom("CG", "N", "CA", "CB", 1.520, 113.78, None, 1),
        IdealAtom("SD", "CA", "CB", "CG", 1.835, 112.53, None, 2),
        IdealAtom("CE", "CB", "CG", "SD", 1.814, 100.16, None, 3),
    ),
    "PHE": (
        IdealAtom("CB", "C", "N", "CA", 1.532, 110.60, -122.31, 0),
        IdealAtom("CG", "N", "CA", "CB", 1.505, 113.79, None, 1),
        IdealAtom("CD1", "CA", "CB", "CG", 1.389, 120.68, None, 2),
        IdealAtom("CD2", "CD1", "CB", "CG", 1.389, 120.55, -180.00, 2),
        IdealAtom("CE1", "CB", "CG", "CD1", 1.393, 120.80, 180.00, 2),
        IdealAtom("CE2", "CB", "CG", "CD2", 1.392, 120.76, -180.00, 2),
        IdealAtom("CZ", "CG", "CD1", "CE1", 1.386, 119.83, 0.05, 2),
    ),
    "PRO": (
        IdealAtom("CB", "C", "N", "CA", 1.531, 103.32, -119.77, 0),
        IdealAtom("CG", "N", "CA", "CB", 1.495, 104.81, None, 1),
        IdealAtom("CD", "CA", "CB", "CG", 1.502, 108.52, None, 2),
    ),
    "SER": (
        IdealAtom("CB", "C", "N", "CA", 1.529, 110.53, -122.26, 0),
        IdealAtom("OG", "N", "CA", "CB", 1.417, 110.79, None, 1),
    ),
    "THR": (
        IdealAtom("CB", "C", "N", "CA", 1.540, 111.27, -122.15, 0),
        IdealAtom("OG1", "N", "CA", "CB", 1.433, 109.23, None, 1),
        IdealAtom("CG2", "OG1", "CA", "CB", 1.525, 111.14, -120.31, 1),
    ),
    "TRP": (
        IdealAtom("CB", "C", "N", "CA", 1.531, 110.57, -122.28, 0),
        IdealAtom("CG", "N", "CA", "CB", 1.499, 113.97, None, 1),
        IdealAtom("CD1", "CA", "CB", "CG", 1.367, 127.06, None, 2),
        IdealAtom("CD2", "CD1", "CB", "CG", 1.431, 126.65, -179.75, 2),
        IdealAtom("NE1", "CB", "CG", "CD1", 1.376, 110.12, -179.82, 2),
        IdealAtom("CE2", "CB", "CG", "CD2", 1.412, 107.21, 179.83, 2),
        IdealAtom("CE3", "CB", "CG", "CD2", 1.401, 133.82, -0.23, 2),
        IdealAtom("CZ2", "CG", "CD2", "CE2", 1.397, 122.31, 179.96, 2),
        IdealAtom("CZ3", "CG", "CD2", "CE3", 1.390, 118.63, -179.94, 2),
        IdealAtom("CH2", "CD2", "CE2", "CZ2", 1.371, 117.54, 0.00, 2),
    ),
    "TYR": (
        IdealAtom("CB", "C", "N", "CA", 1.532, 110.56, -122.24, 0),
        IdealAtom("CG", "N", "CA", "CB", 1.509, 113.71, None, 1),
        IdealAtom("CD1", "CA", "CB", "CG", 1.393, 120.93, None, 2),
        IdealAtom("CD2", "CD1", "CB", "CG", 1.391, 120.84, -179.95, 2),
        IdealAtom("CE1", "CB", "CG", "CD1", 1.391, 121.13, -179.90, 2),
        IdealAtom("CE2", "CB", "CG", "CD2", 1.391, 121.13, 179.90, 2),
        IdealAtom("CZ", "CG", "CD1", "CE1", 1.382, 119.46, -0.05, 2),
        IdealAtom("OH", "CD1", "CE1", "CZ", 1.377, 119.70, 180.00, 2),
    ),
    "VAL": (
        IdealAtom("CB", "C", "N", "CA", 1.545, 111.55, -122.43, 0),
        IdealAtom("CG1", "N", "CA", "CB", 1.528, 110.70, None, 1),
        IdealAtom("CG2", "CG1", "CA", "CB", 1.528, 110.42, 122.82, 1),
    ),

    "GLY": (),
}
# fmt: on


def moved_by(resname: str, chi_index: int) -> tuple[str, ...]:
    """Side-chain atoms that a rotation about the χ bond `chi_index` (0-based) moves."""
    return tuple(row.name for row in IDEAL.get(resname, ()) if row.group > chi_index)
