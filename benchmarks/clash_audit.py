"""Issue 19's independent check: new severe clashes in the written multiconformer model.

    python benchmarks/clash_audit.py [--weights W] [--data ../shared/data/multiconf] [--held-out N]

Runs `predict` (shipped weights, default settings: input altlocs kept) on the 20 gate structures
(the smallest of the validation split, as benchmarks/multiconformer_gates.py picks them) and on
N more held-out structures (the next validation ones and the test split, smallest first), and
counts severe clashes in the written mmCIF that the input file does not have. The search is
gemmi's ContactSearch over the crystal (cell and space group, so symmetry copies count), with
no code shared with the clash screen in qfitlatent/ensemble/multiconf.py:

- severe: heavy atoms whose van der Waals spheres overlap by >= 0.4 A (Bondi radii; metal
  ions 1.2 A), except N/O pairs, which may hydrogen-bond and are severe below 2.5 A;
- atoms of different altlocs (both non-blank) never meet (ContactSearch's rule);
- "new": a contact between two positions the input does not have in contact (keys are atom
  names and coordinates, so the input side chain relabelled altloc A is the same contact).
"""

import argparse
from pathlib import Path

import gemmi

BONDI = {"C": 1.70, "N": 1.55, "O": 1.52, "S": 1.80, "Se": 1.90, "P": 1.80, "F": 1.47,
         "Cl": 1.75, "Br": 1.85, "I": 1.98}  # fmt: skip
METAL = 1.20
SEVERE_OVERLAP = 0.4  # Å
POLAR_MIN = 2.5  # Å between N/O atoms
SEARCH = 4.0  # Å: beyond every pair's contact distance


def _radius(el: gemmi.Element) -> float:
    return METAL if el.is_metal else BONDI.get(el.name, 1.70)


def severe_contacts(st: gemmi.Structure) -> dict[tuple, tuple]:
    """{pair key: (atom, partner, distance, symmetry copy?)} of the severe clashes in model 0."""
    st = st.clone()
    st.remove_hydrogens()
    model = st[0]
    ns = gemmi.NeighborSearch(model, st.cell, 5).populate()
    cs = gemmi.ContactSearch(SEARCH)
    cs.ignore = gemmi.ContactSearch.Ignore.SameResidue
    out = {}
    for c in cs.find_contacts(ns):
        a, b = c.partner1.atom, c.partner2.atom
        ea, eb = a.element, b.element
        if ea.name in ("N", "O") and eb.name in ("N", "O"):
            severe = c.dist < POLAR_MIN
        else:
            severe = _radius(ea) + _radius(eb) - c.dist >= SEVERE_OVERLAP
        if not severe:
            continue
        ends = sorted(
            (p.chain.name, p.residue.seqid.num, p.residue.seqid.icode, p.atom.name,
             *(round(v, 2) for v in p.atom.pos.tolist()))
            for p in (c.partner1, c.partner2)
        )  # fmt: skip
        key = (*ends, round(c.dist, 2))
        # A copy by a lattice translation alone has image_idx 0 too: compare the distance.
        image = abs(a.pos.dist(b.pos) - c.dist) > 1e-3
        out[key] = (str(c.partner1), str(c.partner2), round(c.dist, 2), image)
    return out


def new_severe_clashes(before: gemmi.Structure, after: gemmi.Structure) -> list[tuple]:
    """Severe clashes of `after` that `before` does not have: (atom, partner, Å, symmetry?)."""
    old = severe_contacts(before)
    return [v for k, v in severe_contacts(after).items() if k not in old]


def main() -> None:
    import torch

    from qfitlatent.checkpoint import default_weights, load_model
    from qfitlatent.predict import multiconformer_cif, predict

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, default=default_weights())
    p.add_argument("--data", type=Path, default=Path("../shared/data/multiconf"))
    p.add_argument("--held-out", type=int, default=12, help="held-out structures beyond the 20")
    args = p.parse_args()
    torch.set_num_threads(1)
    model, info = load_model(args.weights, "cpu")
    split = info["split"]
    val = sorted((f for f in args.data.iterdir() if f.name.split(".")[0] in set(split["val"])),
                 key=lambda f: f.stat().st_size)  # fmt: skip
    test = sorted((f for f in args.data.iterdir()
                   if f.name.split(".")[0] in set(split.get("test", []))),
                  key=lambda f: f.stat().st_size)  # fmt: skip
    gate, more = val[:20], (val[20:] + test)[: args.held_out]
    print(f"weights {args.weights.name}; severe = vdW overlap >= {SEVERE_OVERLAP} A, N/O pairs "
          f"< {POLAR_MIN} A; crystal symmetry from each file's cell\n")  # fmt: skip
    print("| set | structure | split | alternatives written | rejected: clash | of them by a "
          "symmetry copy | new severe clashes | with symmetry copies |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    total = [0, 0, 0, 0, 0, 0]
    for which, files in (("gate", gate), ("held-out", more)):
        for path in files:
            pred = predict(model, path, n_samples=2)
            m = pred.multiconformer
            written = sum(r["source"] == "predicted" and r["status"] == "written" for r in m.rows)
            clash = [r for r in m.rows if r["status"] == "rejected: clash"]
            sym = sum("symmetry copy" in r["partner"] for r in clash)
            doc = gemmi.cif.read_string(multiconformer_cif(pred))
            after = gemmi.make_structure_from_block(doc.sole_block())
            new = new_severe_clashes(gemmi.read_structure(str(path)), after)
            n_sym = sum(x[3] for x in new)
            row = [m.n_split, written, len(clash), sym, len(new), n_sym]
            total = [a + b for a, b in zip(total, row, strict=True)]
            print(f"| {which} | {path.name.split('.')[0]} | " + " | ".join(map(str, row)) + " |")
            for x in new:
                print(f"|  |  new: {x[0]} – {x[1]} {x[2]} Å{' (symmetry)' if x[3] else ''} |")
    print("| all | | " + " | ".join(map(str, total)) + " |")


if __name__ == "__main__":
    main()
