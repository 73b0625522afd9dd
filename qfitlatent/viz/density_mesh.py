"""The map around one residue as a mesh 3Dmol draws: cut a small box, write it as a cube file.

A whole unit cell as an isosurface would cost the browser seconds on every residue change; a
box of ~12 Å around the selected residue is a few thousand points and draws at once. The box is
an orthogonal grid in the model's frame sampled from the map by the same trilinear
interpolation the Ringer scans use (`density.sample`), so the mesh shows exactly the values the
evidence was read from, whatever the crystal's cell angles. Pure: no streamlit here.
"""

import math
from dataclasses import dataclass

import numpy as np

from ..density.grid import DensityMap, sample

BOX_HALF_A = 6.0  # Å from the residue's centre to the box's faces: every rotamer of Arg fits
SPACING_A = 0.6  # Å between box points: finer than a 1.4 Å map's own grid needs, ~9k points
TWO_FOFC_LEVEL = 1.0  # σ: the contour crystallographers look at the 2mFo-DFc map
FOFC_LEVEL = 3.0  # σ: ± this on the difference map (green positive, red negative)
MESH_COLOURS = {"2mFo-DFc": "#3a6fd8", "+mFo-DFc": "#1a9e1a", "-mFo-DFc": "#d62728"}


@dataclass(frozen=True)
class MapBox:
    """Map values on an orthogonal grid: values[i, j, k] lies at origin + spacing * (i, j, k)."""

    origin: np.ndarray  # [3] Å, model frame
    spacing: float  # Å
    values: np.ndarray  # [nx, ny, nz] σ; outside a boxed (cryo-EM) map: the map's mean, 0


def box_points(origin: np.ndarray, spacing: float, shape: tuple[int, int, int]) -> np.ndarray:
    """[nx, ny, nz, 3] Å: the positions of a box's grid points."""
    axes = [origin[d] + spacing * np.arange(shape[d]) for d in range(3)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)


def cut_box(
    dmap: DensityMap, centre, half: float = BOX_HALF_A, spacing: float = SPACING_A
) -> MapBox:
    """The map sampled on a cube of edge 2·`half` Å centred on `centre` [3] Å."""
    n = int(math.ceil(2.0 * half / spacing)) + 1
    origin = np.asarray(centre, dtype=np.float64) - half
    values = sample(dmap, box_points(origin, spacing, (n, n, n)))  # [n, n, n]
    # NaN (past a cryo-EM box's edge) would poison marching cubes; the mean draws no contour.
    return MapBox(origin, float(spacing), np.nan_to_num(values, nan=0.0))


def cube_text(box: MapBox, comment: str = "qfitlatent map box") -> str:
    """The box as a Gaussian cube file in Å (negative voxel counts mean Å to 3Dmol and to the
    format's definition), no atoms, values in σ, x slowest and z fastest as the format wants."""
    nx, ny, nz = box.values.shape
    s, (ox, oy, oz) = box.spacing, box.origin
    head = [
        comment.replace("\n", " ")[:70],
        "values in sigma units; lengths in Angstrom",
        f"{0:5d}{ox:12.5f}{oy:12.5f}{oz:12.5f}",
        f"{-nx:5d}{s:12.5f}{0:12.5f}{0:12.5f}",
        f"{-ny:5d}{0:12.5f}{s:12.5f}{0:12.5f}",
        f"{-nz:5d}{0:12.5f}{0:12.5f}{s:12.5f}",
    ]
    # Two decimals of σ are below what a contour can show; six values a line keeps lines short.
    flat = [f"{v:.2f}" for v in box.values.reshape(-1)]
    rows = [" ".join(flat[k : k + 6]) for k in range(0, len(flat), 6)]
    return "\n".join(head + rows) + "\n"


def meshes(two_fofc: MapBox | None, fofc: MapBox | None) -> list[dict]:
    """The isosurfaces to draw: [{"cube": text, "level": σ, "colour": hex, "name": str}].

    2mFo-DFc at +1σ (blue); mFo-DFc at +3σ (green) and −3σ (red) where there is a difference map.
    """
    out = []
    if two_fofc is not None:
        name = f"2mFo-DFc {TWO_FOFC_LEVEL:g}σ"
        out.append({"cube": cube_text(two_fofc, "2mFo-DFc"), "level": TWO_FOFC_LEVEL,
                    "colour": MESH_COLOURS["2mFo-DFc"], "name": name})  # fmt: skip
    if fofc is not None:
        text = cube_text(fofc, "mFo-DFc")
        for sign, key in ((1.0, "+mFo-DFc"), (-1.0, "-mFo-DFc")):
            level = sign * FOFC_LEVEL
            out.append({"cube": text, "level": level, "colour": MESH_COLOURS[key],
                        "name": f"mFo-DFc {level:+g}σ"})  # fmt: skip
    return out


def residue_meshes(maps, atoms: dict[str, np.ndarray]) -> list[dict]:
    """`meshes` of a MapPair's maps in a box centred on the residue's CB (CA for a residue
    without one; the atoms' centre failing both): every rotamer of the side chain lies inside.

    Args:
        maps: density.MapPair.
        atoms: name -> [3] Å of the residue's modelled conformer.
    """
    if not atoms:
        return []
    centre = atoms.get("CB", atoms.get("CA"))
    if centre is None:
        centre = np.mean(np.stack(list(atoms.values())), axis=0)
    two = cut_box(maps.two_fofc, centre)
    return meshes(two, cut_box(maps.fofc, centre) if maps.fofc is not None else None)


def add_meshes(view, items: list[dict]) -> None:
    """Draw `meshes` output on a viewer scene (`viewer.Scene`) as wireframe isosurfaces."""
    for item in items:
        view.addVolumetricData(
            item["cube"],
            "cube",
            {"isoval": float(item["level"]), "color": item["colour"], "wireframe": True,
             "linewidth": 1, "opacity": 0.85},
        )  # fmt: skip
