"""The 3D viewer: the structure's text for it, one residue's atoms as PDB records, and the scene
of a residue in its neighbourhood with conformers overlaid, as a JSON-able list of 3Dmol.js calls
that the app's viewer component (viewer_component/) draws. Pure: no streamlit here.

Everything arrives as plain records: PDB text (only ever from `viewer_pdb`), residue ids
(chain, resnum, icode), conformers as {"pdb": ATOM text, "colour": hex}. Residue ids carry the
real chain names; the text names each chain by a one-character ID (`viewer_chain_ids`), the one
that selections and conformers sent to 3Dmol use.
"""

import hashlib
import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from html import escape

import gemmi
import numpy as np

from ..residues import element_of
from .colours import CARTOON_GREY, ELEMENT_COLOURS

JS_URL = "/app/static/3Dmol-min.js"  # served by streamlit's static serving: works offline


# --- structure text for the viewer --------------------------------------------------------------

# The viewer's chain IDs. 3Dmol.js reads a PDB chain from column 22 alone (a two-character name
# in columns 21-22 reads as its second character) and takes any character there, so the viewer
# names every chain with one character of printable ASCII but the space and '<' or '>' (never in
# the viewer's text, see `viewer_pdb`): 92, the PDB format's usual names first.
VIEWER_CHAIN_IDS = (string.ascii_uppercase + string.ascii_lowercase + string.digits) + "".join(
    c for c in string.punctuation if c not in "<>"
)


def viewer_chain_ids(names: Iterable[str]) -> dict[str, str]:
    """{chain name: one-character viewer ID}: a one-character name that is an ID is its own,
    every other name (mmCIF's "AAA", a blank one) takes an ID no chain has as its name.

    Beyond 92 chains the IDs repeat (the free ones first, then all of them again): the drawn
    neighbourhood gives its chains IDs of their own (`drawn_pdb`), but the whole structure's text
    then shares an ID between chains, and a residue styled there also styles the residue of the
    same number in a chain with the same ID.
    """
    names = list(dict.fromkeys(names))
    own = {n for n in names if len(n) == 1 and n in VIEWER_CHAIN_IDS}
    spare = [c for c in VIEWER_CHAIN_IDS if c not in own] + list(VIEWER_CHAIN_IDS)
    ids, k = {}, 0
    for name in names:
        if name in own:
            ids[name] = name
        else:
            ids[name] = spare[k % len(spare)]
            k += 1
    return ids


def viewer_pdb(structure: gemmi.Structure, chain_ids: dict[str, str] | None = None) -> str:
    """PDB text for the viewer, re-written by gemmi's minimal writer, each chain named by its
    viewer ID (`chain_ids`, default `viewer_chain_ids` of the structure's chains).

    Uploaded text never reaches the page verbatim: the minimal writer keeps only CRYST1, ATOM,
    HETATM, TER and END records (a `</script>` in a REMARK or TITLE is gone), and '<' or '>' in
    the fixed columns that survive (names from an mmCIF) become '_', so nothing can close the
    viewer's script tag.
    """
    if chain_ids is None:
        chain_ids = viewer_chain_ids(ch.name for model in structure for ch in model)
    if any(name != cid for name, cid in chain_ids.items()):
        structure = structure.clone()  # the caller's keeps its names (a copy takes ms)
        for model in structure:
            for chain in model:
                chain.name = chain_ids[chain.name]
    text = structure.make_pdb_string(gemmi.PdbWriteOptions(minimal=True))
    return text.replace("<", "_").replace(">", "_")


@dataclass(frozen=True)
class PdbIndex:
    """Viewer PDB text split per atom line, with coordinates, to cut a neighbourhood out fast.
    Residues are named by their real chain names; the lines by the chains' viewer IDs."""

    lines: list[str]  # [M] ATOM/HETATM records, the chain's viewer ID in column 22
    xyz: np.ndarray  # [M, 3] Å
    residue: np.ndarray  # [M] int, index into keys
    keys: list[tuple[str, int, str]]  # (chain name, resnum, icode) per residue, file order
    chain_ids: dict[str, str]  # chain name -> its viewer ID in `lines`


def viewer_index(structure: gemmi.Structure) -> PdbIndex:
    """The index of `viewer_pdb` text of the structure, its keys with the real chain names
    (those `display.residue_id` gives), distinct however many chains share a viewer ID."""
    names = [ch.name for model in structure for ch in model]
    chain_ids = viewer_chain_ids(names)
    atoms = [ch.count_atom_sites() for model in structure for ch in model]
    lines = _atom_lines(viewer_pdb(structure, chain_ids))
    # gemmi writes one record per atom, chain after chain: a line's chain is known by its place.
    if len(lines) != sum(atoms):
        raise RuntimeError(f"the viewer's text has {len(lines)} atoms, the structure {sum(atoms)}")
    chain_of = np.repeat(np.arange(len(names)), atoms)  # [M]
    return _index(lines, [names[c] for c in chain_of], chain_ids)


def pdb_index(text: str) -> PdbIndex:
    """The index of PDB text (`viewer_pdb`'s; `viewer_index` indexes a structure at once), its
    keys with the chain names of columns 21-22, its lines with their viewer IDs."""
    lines = _atom_lines(text)
    chains = [line[20:22].strip() for line in lines]
    chain_ids = viewer_chain_ids(chains)
    if any(name != cid for name, cid in chain_ids.items()):  # "AB" or blank: not 3Dmol's
        lines = [
            line[:20] + " " + chain_ids[c] + line[22:]
            for line, c in zip(lines, chains, strict=True)
        ]
    return _index(lines, chains, chain_ids)


def _atom_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(("ATOM", "HETATM"))]


def _index(lines: list[str], chains: list[str], chain_ids: dict[str, str]) -> PdbIndex:
    """The index of atom `lines`, each of chain `chains[m]` (its real name)."""
    xyz, residue, keys, seen = [], [], [], {}
    for line, chain in zip(lines, chains, strict=True):
        key = (chain, int(line[22:26]), line[26].strip())
        if key not in seen:
            seen[key] = len(keys)
            keys.append(key)
        xyz.append((float(line[30:38]), float(line[38:46]), float(line[46:54])))
        residue.append(seen[key])
    return PdbIndex(lines, np.asarray(xyz, dtype=np.float32).reshape(-1, 3),
                    np.asarray(residue, dtype=np.int64), keys, chain_ids)  # fmt: skip


def near_residues(index: PdbIndex, focus: tuple[str, int, str], radius: float) -> np.ndarray:
    """Indices into `index.keys` of the residues with an atom within `radius` Å of an atom of the
    focus residue (3Dmol's `byres` + `within`, computed here once instead of per selection in
    the browser); empty when the focus is not in the text."""
    residues, gap = residue_gaps(index, focus, radius)
    return residues[gap <= radius]


def residue_gaps(
    index: PdbIndex, focus: tuple[str, int, str], radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """([R] indices into `index.keys`, [R] Å): residues with an atom in the box `radius` Å
    around the focus residue, and each one's closest approach to it; empty when the focus is
    not in the text. One search serves every radius up to `radius`."""
    try:
        r = index.keys.index(focus)
    except ValueError:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    centre = index.xyz[index.residue == r]  # [F, 3]
    lo, hi = centre.min(0) - radius, centre.max(0) + radius
    box = np.flatnonzero(((index.xyz >= lo) & (index.xyz <= hi)).all(1))  # cheap prefilter
    d = np.sqrt(((index.xyz[box, None, :] - centre[None]) ** 2).sum(-1).min(1))  # [B]
    residues, where = np.unique(index.residue[box], return_inverse=True)  # [R], [B]
    gap = np.full(len(residues), np.inf)
    np.minimum.at(gap, where, d)
    return residues, gap


def _safe(text: str, width: int) -> str:
    """A name for a fixed PDB column: printable ASCII without '<' or '>'."""
    out = "".join(c if c.isascii() and c.isprintable() and c not in "<>" else "_" for c in text)
    return out[:width]


def atoms_pdb(
    atoms: dict[str, np.ndarray],
    resname: str,
    chain: str,
    resnum: int,
    icode: str = "",
    occ: float = 1.0,
) -> str:
    """ATOM records for one residue's atoms {name: [3] Å} (element from the name), its chain
    named by its one-character ID in the scene's text (`Drawn.chain_ids`)."""
    if len(chain) != 1:  # a longer name would not select with the structure's residue
        raise ValueError(f"a viewer chain ID is one character, not {chain!r}")
    lines = []
    for serial, (name, xyz) in enumerate(atoms.items(), start=1):
        element = element_of(name)
        atom_col = f" {name:<3}" if len(name) < 4 else name[:4]
        x, y, z = (float(v) for v in xyz)
        lines.append(
            f"ATOM  {serial:5d} {_safe(atom_col, 4):<4} {_safe(resname, 3):>3} "
            f"{_safe(chain, 1)}{int(resnum):4d}{_safe(icode, 1) or ' '}   "
            f"{x:8.3f}{y:8.3f}{z:8.3f}{occ:6.2f}{0:6.2f}          {element:>2}"
        )
    return "\n".join(lines) + "\nEND\n"


def side_chain_atoms(atoms: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """CA and the side chain: what a stick overlay needs to join the cartoon."""
    return {k: v for k, v in atoms.items() if k not in ("N", "C", "O", "OXT")}


# --- the 3D view -------------------------------------------------------------------------------


@dataclass
class Scene:
    """What the viewer draws: the structure's text (`base`, 3Dmol's model 0) and the 3Dmol.js
    viewer calls after it, [(method, [args])], recorded as py3Dmol records them (any method name;
    arguments must be JSON-able). The component (viewer_component/viewer.js) keeps one viewer
    per page and replays the calls on it, parsing `base` again only when its hash changes.
    """

    base: str
    height: int = 480
    calls: list[tuple[str, list]] = field(default_factory=list)

    def __getattr__(self, method: str):
        if method.startswith("_"):  # copy/pickle probe dunders: not viewer calls
            raise AttributeError(method)
        return lambda *args: self.calls.append((method, list(args)))

    def calls_to(self, method: str) -> list[list]:
        """The arguments of every call to `method`, in order."""
        return [args for name, args in self.calls if name == method]

    def message(
        self,
        structure: str = "",
        focus: tuple[str, int, str] | None = None,
        held: str | None = None,
    ) -> dict:
        """The component's arguments: the scene, its base text's hash, the structure it belongs
        to (a rotation is kept across residues of one structure) and the focus residue (for
        tests to see which residue is drawn). The base text itself is None when `held`, the hash
        of the text the component holds, is its hash: a whole structure is tens of MB, and the
        component would only drop it again."""
        base_hash = hashlib.sha1(self.base.encode()).hexdigest()
        return {
            "base": None if base_hash == held else self.base,
            "base_hash": base_hash,
            "calls": [[name, args] for name, args in self.calls],
            "height": self.height,
            "structure": structure,
            "focus": list(focus) if focus else None,
            "js_url": JS_URL,
        }


def _sel(chain: str, resnum: int | list[int], icode: str = "") -> dict:
    """The 3Dmol selection of exactly residue `resnum` (or each of a list of numbers) of `chain`
    with insertion code `icode`. The code is always named, a blank one too (3Dmol reads column 27
    as is: " "): without it, residue 100 would also select 100A and 100B."""
    return {"chain": chain, "resi": resnum, "icode": icode or " "}


CARTOON_A = 14.0  # Å: residues this close keep their cartoon when the rest is switched off
# The camera frames the residue's conformers and what lies within FRAME_A of them, so a side
# chain fills a good part of the view (framing the 10 Å neighbourhood left it ~50 px wide).
FRAME_A = 3.0
# The cartoon stays see-through: in front of the residue it would hide its side chain.
CARTOON_OPACITY = 0.6
# Labels sit this far (px) up and right of their CA, so they never cover CA, CB and the bonds.
LABEL_OFFSET = {"x": 18, "y": -18}


@dataclass(frozen=True)
class Drawn:
    """The PDB text a scene draws and the one-character IDs its chains have in it."""

    text: str
    chain_ids: dict[str, str]  # chain name -> its ID in column 22 of `text`


def drawn_pdb(index: PdbIndex, shown: list[tuple[str, int, str]], whole: bool = False) -> Drawn:
    """The PDB text `ensemble_view` needs for residues `shown`: all of it with `whole`, else only
    the neighbourhoods of the shown residues (a margin past CARTOON_A, so the cartoon kept
    around each has its whole residues), in file order: the browser then parses a few hundred
    atoms instead of a whole structure, which keeps a change of residue quick there.

    The whole text keeps the index's IDs, so it is the same for every residue of a structure
    and the page sends it once. A neighbourhood's chains get IDs of their own in it, distinct up
    to 92 chains in the neighbourhood: exact where the structure has more chains than IDs.
    """
    if whole or any(rid not in index.keys for rid in shown):  # not in the text: draw it all
        return Drawn("\n".join(index.lines) + "\nEND\n", index.chain_ids)
    near = [near_residues(index, rid, CARTOON_A + 2.0) for rid in shown]  # [R_s] each
    kept = np.flatnonzero(np.isin(index.residue, np.concatenate(near)))  # [L] lines, file order
    chains = [index.keys[r][0] for r in index.residue[kept]]  # [L] chain names
    ids = _scene_ids(list(dict.fromkeys(chains)), index.chain_ids)
    rows = zip(kept, chains, strict=True)
    lines = (index.lines[m][:21] + ids[c] + index.lines[m][22:] for m, c in rows)
    return Drawn("\n".join(lines) + "\nEND\n", ids)


def _scene_ids(chains: list[str], chain_ids: dict[str, str]) -> dict[str, str]:
    """IDs for the chains of one scene: each chain's own ID (`chain_ids`), or where a chain
    before it in the scene has that one (more than 92 chains in the structure), an ID that no
    chain of the scene has."""
    used = {chain_ids[name] for name in chains}
    spare = iter(c for c in VIEWER_CHAIN_IDS if c not in used)
    ids: dict[str, str] = {}
    for name in chains:
        cid = chain_ids[name]
        ids[name] = next(spare, cid) if cid in ids.values() else cid
    return ids


def _selections(residues: Iterable[tuple[str, int, str]]) -> list[dict]:
    """3Dmol selections of exactly these residues (chain, resnum, icode): one per chain and
    insertion code, as `_sel` names them, since 3Dmol matches each listed property on its own
    (a list of numbers with a list of codes would select every pairing of the two)."""
    groups: dict[tuple[str, str], list[int]] = {}
    for chain, resnum, icode in residues:
        groups.setdefault((chain, icode), []).append(int(resnum))
    return [_sel(chain, resis, icode) for (chain, icode), resis in groups.items()]


def ensemble_view(
    pdb_text: str,
    *,
    focus: tuple[str, int, str],
    index: PdbIndex | None = None,
    chain_ids: dict[str, str] | None = None,
    sampled: list[dict] | None = None,
    observed: list[dict] | None = None,
    residue_colours: dict[tuple[str, int, str], str] | None = None,
    labels: list[tuple[tuple[str, int, str], str]] = (),
    whole: bool = False,
    height: int = 480,
) -> Scene:
    """The residue in its neighbourhood: cartoon and side chains within about 10 Å drawn in
    full, sampled and observed conformers as sticks, the camera on the residue.

    Args:
        pdb_text: the structure, or the part of it drawn (`drawn_pdb`), from `viewer_pdb`
            (never raw upload text).
        focus: (chain, resnum, icode) of the residue to zoom to; residues are named by their
            real chain names everywhere here, and selected by their chains' IDs in `pdb_text`.
        index: the index `pdb_text` was cut from (`drawn_pdb` keeps everything within
            CARTOON_A of the focus), so the neighbours are found without parsing the text
            again; parsed from `pdb_text` when not given.
        chain_ids: {chain name: its ID in `pdb_text`} (`Drawn.chain_ids`); the index's when
            not given.
        sampled: conformers to overlay, each {"pdb": ATOM text, "colour": hex}; thin sticks.
        observed: the input's altlocs of the shown residues, each {"pdb": ATOM text}; thicker
            sticks in element colours with dark carbons, so they read as "the data".
        residue_colours: {(chain, resnum, icode): hex} cartoon colour per residue (flexibility);
            residues not listed stay grey.
        labels: (residue id, text) labels to float next to residues.
        whole: also draw the cartoon of everything farther than CARTOON_A, faded. Off by
            default: on a large structure other chains' cartoon buries the residue.
    """
    view = Scene(pdb_text, height)  # model 0: 3Dmol keeps altloc A (or blank) for the cartoon
    index = index or pdb_index(pdb_text)
    ids = index.chain_ids if chain_ids is None else chain_ids

    def in_text(rid: tuple[str, int, str]) -> tuple[str, int, str]:
        # A chain not in the text (a focus not found: should not happen) keeps its name.
        return ids.get(rid[0], rid[0]), rid[1], rid[2]

    def selections(rids: Iterable[tuple[str, int, str]]) -> list[dict]:
        return _selections(in_text(rid) for rid in rids)

    focus_sel = {"model": 0, **_sel(*in_text(focus))}
    # Residues near the focus are found here, once, and named in plain selections: a 3Dmol
    # `within` selection searches every atom in the browser, once per selection that has it
    # (one per cartoon colour), which took seconds of each residue change on software WebGL.
    near, gap = residue_gaps(index, focus, CARTOON_A)  # [R], [R] Å
    cartoon = {index.keys[r] for r in near[gap <= CARTOON_A]}  # (chain, resnum, icode)
    if whole:  # one opacity per model in 3Dmol, so the whole cartoon is faded alike
        view.setStyle({"model": 0}, {"cartoon": {"color": CARTOON_GREY, "opacity": 0.55}})
    else:
        view.setStyle({"model": 0}, {})
        grey = {"cartoon": {"color": CARTOON_GREY, "opacity": CARTOON_OPACITY}}
        for sel in selections(sorted(cartoon)):
            view.setStyle({"model": 0, **sel}, grey)
    if residue_colours:
        by_colour: dict[str, list[tuple[str, int, str]]] = {}
        for rid, colour in residue_colours.items():
            if whole or rid in cartoon:
                by_colour.setdefault(colour, []).append(rid)
        opacity = 0.55 if whole else CARTOON_OPACITY  # 3Dmol: one opacity per model
        for colour, rids in by_colour.items():
            for sel in selections(rids):
                view.setStyle({"model": 0, **sel},
                              {"cartoon": {"color": colour, "opacity": opacity}})  # fmt: skip
    # The neighbourhood in full: every residue with an atom within 6 Å of the focus residue
    # as thin lines (side chains and backbone), so contacts read without rotating.
    for sel in selections(index.keys[r] for r in near[gap <= 6.0]):
        view.addStyle(
            {"model": 0, **sel},
            {"line": {"colorscheme": {"prop": "elem", "map": ELEMENT_COLOURS}, "opacity": 0.8}},
        )
    for conf in observed or ():
        view.addModel(conf["pdb"], "pdb")
        view.setStyle(
            {"model": -1},
            {"stick": {"radius": 0.22, "colorscheme": {"prop": "elem", "map": ELEMENT_COLOURS}}},
        )
    for conf in sampled or ():
        view.addModel(conf["pdb"], "pdb")
        view.setStyle(
            {"model": -1}, {"stick": {"radius": 0.13, "color": conf["colour"], "opacity": 0.95}}
        )
    for rid, text in labels:
        view.addLabel(
            text,
            {
                "fontSize": 12,
                "fontColor": "black",
                "backgroundColor": "white",
                "backgroundOpacity": 0.75,
                "borderThickness": 0,
                "inFront": True,
                "screenOffset": LABEL_OFFSET,
            },
            {"model": 0, **_sel(*in_text(rid)), "atom": "CA"},
        )
    view.setBackgroundColor("white")
    # Frame the residue with all its conformers (every model), then centre the residue itself.
    view.zoomTo({"within": {"distance": FRAME_A, "sel": _sel(*in_text(focus))}})
    view.center(focus_sel)
    return view


def legend_html(items: list[tuple[str, str]]) -> str:
    """Small coloured chips (label, hex) for the viewer legend; labels are escaped."""
    chips = "".join(
        f'<span style="display:inline-block;margin:0 10px 2px 0;white-space:nowrap">'
        f'<span style="display:inline-block;width:12px;height:12px;border-radius:2px;'
        f'background:{c};vertical-align:-1px;margin-right:4px"></span>{escape(t)}</span>'
        for t, c in items
    )
    return f'<div style="font-size:0.85rem;line-height:1.6">{chips}</div>'
