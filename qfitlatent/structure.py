"""Reading PDB/mmCIF files with gemmi, keeping the alternate locations that are our signal.

`read_structure` returns a cleaned gemmi.Structure (first model, no hydrogens, waters or
ligands; altlocs kept) and one `ResidueRecord` per usable protein residue; what the network
featurises comes from these. `ParsedStructure.full` keeps the first model as the file has it
(waters, ligands, metals, hydrogens, every altloc and occupancy), for the writers that must
give every input atom back and for the clash screen's environment. Each record holds the
primary-altloc backbone (SPEC §2) and every distinct side-chain conformer with its occupancy
(SPEC §6), decided here once so features, writers and the app agree.

How messy files are handled, deliberately:
- Occupancies that do not sum to 1 per residue are normalised for the network (`Conformer.occ`);
  `Conformer.file_occ` keeps the file's, which the written model, the report and the app give.
  Atoms of one altloc with different occupancies are averaged.
- Altlocs whose side chains coincide (duplicates with identical coordinates, or altlocs that
  split only the backbone) are merged: they are one side-chain conformer.
- qFit writes every atom per altloc, other programs split only the side chain: an altloc's
  side chain is its own atoms plus the blank ones, and its χ1 uses its own N/CA when split.
- Altlocs of zero total occupancy are dropped when others carry weight.
"""

import gzip
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import gemmi
import numpy as np

from . import residues
from .errors import StructureError
from .progress import Tick, no_tick

SAME_CONFORMER_TOL = 0.05  # Å: side chains closer than this on every atom are one conformer
MAX_ABS_COORD = 9999.0  # Å: beyond what a PDB file can hold, so not a real position
SUFFIXES = (".pdb", ".ent", ".cif", ".mmcif")
BLANK = ""


class ResidueId(NamedTuple):
    """A residue as files and users name it: chain, author residue number, insertion code. The
    one residue id of the package: tables, mixture.json, reports, the CLI and the app use it."""

    chain: str
    resnum: int
    icode: str = ""  # "" when none

    def label(self) -> str:
        """The label "A42", or "A42B" with an insertion code."""
        return f"{self.chain}{self.resnum}{self.icode}"

    def fields(self) -> dict:
        """{"chain", "resnum", "icode"}: the columns every table starts with."""
        return self._asdict()


@dataclass
class Conformer:
    """One distinct side-chain conformer of a residue."""

    altloc: str  # "" for a residue with no side-chain altlocs
    occ: float  # normalised over the residue's conformers (what the network is trained on)
    atoms: dict[str, np.ndarray]  # name -> [3] Å: side-chain atoms plus N, CA of this altloc
    # As the file has it: the altloc letters merged into this conformer (coinciding side chains)
    # and the sum of their side-chain occupancies, not normalised. What the app shows.
    altlocs: str = ""
    file_occ: float = 1.0


@dataclass
class ResidueRecord:
    chain: str
    resnum: int
    icode: str  # "" when none
    resname: str  # as in the file (MSE stays MSE)
    parent: str  # standard residue whose token and χ table apply ("" when none)
    chain_idx: int  # indices into structure[0], for writers that edit the gemmi model
    res_idx: int
    backbone: dict[str, np.ndarray]  # N, CA, C (and O when present) of the primary altloc
    primary_altloc: str
    conformers: list[Conformer]
    chain_break: bool = False  # not peptide-bonded to the previous record

    @property
    def n_obs(self) -> int:
        return len(self.conformers)

    @property
    def id(self) -> ResidueId:
        return ResidueId(self.chain, self.resnum, self.icode)


@dataclass
class ParsedStructure:
    name: str
    structure: gemmi.Structure
    residues: list[ResidueRecord]
    warnings: list[str] = field(default_factory=list)
    # Å, from the header (PDB REMARK 2, mmCIF _refine / _reflns); None where it gives none.
    resolution: float | None = None
    # The first model exactly as read (cell and space group included), and where each record's
    # residue sits in it: (chain_idx, res_idx) in `structure` -> (chain_idx, res_idx) in `full`.
    full: gemmi.Structure | None = None
    full_index: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)

    def input_structure(self) -> gemmi.Structure:
        """The input's first model with every atom (the cleaned one where none was kept)."""
        return self.full if self.full is not None else self.structure

    def input_position(self, rec: "ResidueRecord") -> tuple[int, int]:
        """(chain index, residue index) of a record's residue in `input_structure()`."""
        key = (rec.chain_idx, rec.res_idx)
        return self.full_index.get(key, key) if self.full is not None else key


def structure_id(path: str | Path) -> str:
    """File name without its structure and compression extensions: "1abc.pdb.gz" -> "1abc"."""
    name = Path(path).name
    for ext in (".gz", *SUFFIXES):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
    return name


def refuse_oversized(source, name: str | None, max_bytes: int | None) -> int:
    """The reader's limit in bytes (the operator's `max_mb` unless given), after refusing a file
    above it before it is read: its size on disk, or for a gzip its content, streamed in 64 kB
    chunks up to the limit. A 1 GB file is then refused at the cost of one chunk of memory."""
    from .server_config import load

    max_bytes = max_bytes or load().max_mb * 2**20
    path = Path(source) if isinstance(source, (str, Path)) else None
    if path is None or not path.is_file():  # bytes are checked by _decode; a FIFO never opened
        return max_bytes
    size = 0
    try:
        with open(path, "rb") as fh:
            size = path.stat().st_size
            if size <= max_bytes and fh.read(2) == b"\x1f\x8b":
                fh.seek(0)
                with gzip.GzipFile(fileobj=fh) as unzipped:
                    size = 0
                    while size <= max_bytes and (chunk := unzipped.read(2**16)):
                        size += len(chunk)
    except (OSError, EOFError):
        return max_bytes  # unreadable or a damaged gzip: the reader says which, in its words
    if size > max_bytes:
        raise StructureError(
            f"{name or path.name}: the file is larger than {max_bytes // 2**20} MB; "
            "split the structure or keep only the chains you need"
        )
    return max_bytes


def read_structure(
    source: str | Path | bytes,
    name: str | None = None,
    max_bytes: int | None = None,
    tick: Tick = no_tick,
) -> ParsedStructure:
    """Read a structure from a path or raw bytes (.pdb, .cif, .mmcif, .ent, gzipped or not).
    `max_bytes` (uncompressed) defaults to the operator's limit (server_config `max_mb`).
    `tick(done, total)` hears the protein residues read (`from_gemmi`).

    Raises StructureError with a message about the file, never a parser traceback.
    """
    max_bytes = refuse_oversized(source, name, max_bytes)
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise StructureError(f"{path}: no such file")
        name = name or path.name
        data = path.read_bytes()
    else:
        data = bytes(source)
        name = name or "upload"
    return from_gemmi(_parse(_decode(data, name, max_bytes), name), name, tick)


def from_gemmi(st: gemmi.Structure, name: str, tick: Tick = no_tick) -> ParsedStructure:
    """Clean a gemmi.Structure already in memory (it is modified) and record its residues.
    `tick(done, total)` hears the protein residues recorded: the Python loop that takes most of
    the reading (gemmi's own parsing before it is one call, with nothing to count)."""
    warnings, full = _clean(st, name)
    records = _residue_records(st, name, warnings, tick)
    return ParsedStructure(
        name=structure_id(name),
        structure=st,
        residues=records,
        warnings=warnings,
        # gemmi reads 0 where the header has no resolution.
        resolution=float(st.resolution) if st.resolution > 0 else None,
        full=full,
        full_index=_index_in(full, st),
    )


def _decode(data: bytes, name: str, max_bytes: int) -> str:
    if not data.strip():
        raise StructureError(f"{name}: the file is empty")
    if data[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as fh:
                data = fh.read(max_bytes + 1)
        except (OSError, EOFError) as err:
            raise StructureError(f"{name}: the gzip file is damaged or cut short ({err})") from None
        if not data.strip():
            raise StructureError(f"{name}: the file is empty")
    if len(data) > max_bytes:
        raise StructureError(
            f"{name}: the file is larger than {max_bytes // 2**20} MB; "
            "split the structure or keep only the chains you need"
        )
    if b"\x00" in data[:65536]:
        raise StructureError(f"{name}: this is a binary file, not a PDB or mmCIF text file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
        if sum(not (c.isprintable() or c in "\r\n\t") for c in text[:65536]) > 100:
            raise StructureError(
                f"{name}: this is a binary file, not a PDB or mmCIF text file"
            ) from None
        return text


def _looks_like_cif(text: str) -> bool:
    for line in text.splitlines()[:200]:
        s = line.strip()
        if s.startswith("data_"):
            return True
        if s and not s.startswith("#"):
            if s.startswith(("_", "loop_")):
                return True
            if s[:6].rstrip() in (
                "HEADER",
                "ATOM",
                "HETATM",
                "REMARK",
                "CRYST1",
                "MODEL",
                "TITLE",
                "COMPND",
            ):
                return False
    return False


def _parse(text: str, name: str) -> gemmi.Structure:
    try:
        if _looks_like_cif(text):
            doc = gemmi.cif.read_string(text)
            st = gemmi.make_structure_from_block(doc.sole_block())
        else:
            st = gemmi.read_pdb_string(text)
    except (RuntimeError, ValueError, IndexError) as err:
        cut = (
            ""
            if text.endswith("\n")
            else "; the file seems cut short (its last line is incomplete)"
        )
        raise StructureError(f"{name}: not a readable PDB or mmCIF file ({err}){cut}") from None
    if len(st) == 0 or st[0].count_atom_sites() == 0:
        raise StructureError(f"{name}: no atoms found; is this a PDB or mmCIF coordinate file?")
    return st


def _clean(st: gemmi.Structure, name: str) -> tuple[list[str], gemmi.Structure]:
    """Reduce `st` to the protein residues the network reads; return the warnings and a copy of
    the first model as read (before chain parts are merged, so it writes back as it came)."""
    warnings = []
    if len(st) > 1:
        warnings.append(f"{name} holds {len(st)} models; only the first is used")
        while len(st) > 1:
            del st[1]
    st.setup_entities()
    full = st.clone()
    st.merge_chain_parts()
    st.remove_hydrogens()
    for chain in st[0]:
        for i in reversed(range(len(chain))):
            if not _is_amino_acid(chain[i].name):
                del chain[i]
    st.remove_empty_chains()
    # Never remove_alternative_conformations: the altlocs are the ground truth.
    return warnings, full


def _index_in(full: gemmi.Structure, st: gemmi.Structure) -> dict:
    """(chain, residue) indices of every residue of `st` in `full`, matched by chain name,
    number, insertion code, name and occurrence (merging chain parts keeps their order)."""
    where: dict[tuple, list[tuple[int, int]]] = {}
    for ci, chain in enumerate(full[0]):
        for ri, res in enumerate(chain):
            key = (chain.name, res.seqid.num, res.seqid.icode, res.name)
            where.setdefault(key, []).append((ci, ri))
    seen: dict[tuple, int] = {}
    out = {}
    for ci, chain in enumerate(st[0]):
        for ri, res in enumerate(chain):
            key = (chain.name, res.seqid.num, res.seqid.icode, res.name)
            k = seen.get(key, 0)
            seen[key] = k + 1
            out[(ci, ri)] = where[key][k]
    return out


def _is_amino_acid(resname: str) -> bool:
    info = gemmi.find_tabulated_residue(resname)
    return bool(info and info.is_amino_acid())


def parent_residue(resname: str) -> str:
    """The standard residue a name maps to ("" if none): itself, or the parent gemmi knows."""
    if resname in residues.TOKEN:
        return resname
    info = gemmi.find_tabulated_residue(resname)
    if info and info.is_amino_acid() and info.one_letter_code.islower():
        letter = info.one_letter_code.upper()
        if letter in residues.AA1:
            return residues.AA3[residues.AA1.index(letter)]
    return ""


def _atoms_by_altloc(res: gemmi.Residue) -> dict[str, dict[str, gemmi.Atom]]:
    """name -> {altloc ("" for blank): atom}, with modified-residue atom names renamed."""
    renames = residues.ATOM_RENAMES.get(res.name, {})
    out: dict[str, dict[str, gemmi.Atom]] = {}
    for atom in res:
        if atom.is_hydrogen():
            continue
        alt = atom.altloc if atom.has_altloc() else BLANK
        out.setdefault(renames.get(atom.name, atom.name), {})[alt] = atom
    return out


def _xyz(atom: gemmi.Atom) -> np.ndarray:
    return np.array(atom.pos.tolist(), dtype=np.float64)


def _pick(by_alt: dict[str, gemmi.Atom], altloc: str, fallback: str) -> gemmi.Atom | None:
    """The atom of `altloc`, else the blank one, else the primary's, else the first altloc's."""
    for alt in (altloc, BLANK, fallback, *sorted(by_alt)):
        if alt in by_alt:
            return by_alt[alt]
    return None


def _primary_altloc(atoms: dict[str, dict[str, gemmi.Atom]]) -> str | None:
    """Blank where N, CA, C all have blank copies, else the heaviest backbone altloc."""
    bb = [atoms.get(n, {}) for n in ("N", "CA", "C")]
    if any(not group for group in bb):
        return None
    if all(BLANK in group for group in bb):
        return BLANK
    weights: dict[str, list[float]] = {}
    for group in bb:
        for alt, atom in group.items():
            if alt != BLANK:
                weights.setdefault(alt, []).append(atom.occ)
    # Heaviest mean backbone occupancy; ties go to the first letter.
    return max(sorted(weights), key=lambda alt: (np.mean(weights[alt]), -ord(alt[0])))


def _conformers(atoms: dict[str, dict[str, gemmi.Atom]], primary: str) -> list[Conformer]:
    sc_names = [n for n in atoms if n not in residues.BACKBONE_ATOMS]
    altlocs = sorted({alt for n in sc_names for alt in atoms[n] if alt != BLANK})

    def side_chain(alt: str) -> dict[str, np.ndarray]:
        out = {}
        for n in ("N", "CA", *sc_names):
            atom = _pick(atoms[n], alt, primary) if n in atoms else None
            if atom is not None:
                out[n] = _xyz(atom)
        return out

    if not altlocs:
        own = [a for n in sc_names for a in atoms[n].values()]
        occ = float(np.mean([a.occ for a in own])) if own else 1.0
        return [Conformer(BLANK, 1.0, side_chain(primary), file_occ=occ)]

    conformers = []
    for alt in altlocs:
        own = [atoms[n][alt] for n in sc_names if alt in atoms[n]]
        occ = float(np.mean([a.occ for a in own]))
        conformers.append(Conformer(alt, occ, side_chain(alt), altlocs=alt, file_occ=occ))

    merged: list[Conformer] = []
    for conf in conformers:
        twin = next((m for m in merged if _same_side_chain(m.atoms, conf.atoms)), None)
        if twin is None:
            merged.append(conf)
        else:
            twin.occ += conf.occ
            twin.file_occ += conf.occ
            twin.altlocs += conf.altloc
    if any(c.occ > 0 for c in merged):
        merged = [c for c in merged if c.occ > 0]
    total = sum(c.occ for c in merged)
    for c in merged:
        c.occ = c.occ / total if total > 0 else 1.0 / len(merged)
    return merged


def _same_side_chain(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    shared = [n for n in a if n in b and n not in ("N", "CA")]
    return all(np.abs(a[n] - b[n]).max() < SAME_CONFORMER_TOL for n in shared)


def _residue_records(
    st: gemmi.Structure, name: str, warnings: list[str], tick: Tick = no_tick
) -> list[ResidueRecord]:
    records: list[ResidueRecord] = []
    total = sum(len(chain) for chain in st[0])  # the protein residues left by _clean
    n_protein = 0
    only_ca = True
    dropped = 0
    absurd = 0
    for ci, chain in enumerate(st[0]):
        prev_c: np.ndarray | None = None
        for ri, res in enumerate(chain):
            tick(n_protein, total)  # Ticker reports every 1 %: a call costs ~1 µs of ~300 µs
            n_protein += 1
            atoms = _atoms_by_altloc(res)
            if set(atoms) - {"CA"}:
                only_ca = False
            primary = _primary_altloc(atoms)
            if primary is None:
                dropped += 1
                prev_c = None
                continue
            bb = {
                n: _xyz(_pick(atoms[n], primary, primary))
                for n in ("N", "CA", "C", "O")
                if n in atoms
            }
            coords = np.array([_xyz(a) for group in atoms.values() for a in group.values()])
            if not np.isfinite(coords).all() or np.abs(coords).max() > MAX_ABS_COORD:
                absurd += 1
                prev_c = None
                continue
            if not (
                0.8 < np.linalg.norm(bb["N"] - bb["CA"]) < 2.5
                and 0.8 < np.linalg.norm(bb["C"] - bb["CA"]) < 2.5
            ):
                absurd += 1
                prev_c = None
                continue
            parent = parent_residue(res.name)
            if parent and res.name != parent:
                missing = [a for a in residues.SIDECHAIN_ATOMS[parent] if a not in atoms]
                if missing:  # side chain differs from the parent's: keep it, but as "other"
                    parent = ""
            breaks = prev_c is None or np.linalg.norm(bb["N"] - prev_c) > 2.0
            records.append(
                ResidueRecord(
                    chain=chain.name,
                    resnum=res.seqid.num,
                    icode=res.seqid.icode.strip(),
                    resname=res.name,
                    parent=parent,
                    chain_idx=ci,
                    res_idx=ri,
                    backbone=bb,
                    primary_altloc=primary,
                    conformers=_conformers(atoms, primary),
                    chain_break=bool(breaks),
                )
            )
            prev_c = bb["C"]
    tick(total, total)
    if n_protein == 0:
        raise StructureError(
            f"{name}: no protein residues found (only waters, ligands or nucleic acids)"
        )
    if only_ca:
        raise StructureError(
            f"{name}: only CA atoms (a CA trace); qfitlatent needs N, CA and C of each residue"
        )
    if absurd and absurd >= max(1, len(records)):
        raise StructureError(
            f"{name}: coordinates are missing (NaN) or impossible (beyond ±{MAX_ABS_COORD:g} Å, "
            "or backbone bonds far from 1.5 Å)"
        )
    if len(records) < 2:
        raise StructureError(
            f"{name}: only {len(records)} protein residue(s) with N, CA and C; "
            "qfitlatent needs a protein chain of at least 2 residues"
        )
    if dropped:
        warnings.append(
            f"{dropped} residue(s) without N, CA and C were left out; "
            "the chain is marked broken there"
        )
    if absurd:
        warnings.append(f"{absurd} residue(s) with impossible coordinates were left out")
    return records
