"""The single-conformer reduction and the MTZ column choice (pure functions)."""

import gemmi
import numpy as np
from test_density_read import map_file

from qfitlatent.density import labels
from qfitlatent.density.reduce import single_conformer


def test_single_conformer_keeps_the_heaviest_altloc_at_full_occupancy():
    st = gemmi.read_structure(str(map_file("3k0n_refine.pdb.gz")))
    before = st.make_pdb_string()
    out = single_conformer(st)
    assert st.make_pdb_string() == before  # the input is not touched
    split = 0
    for ch_in, ch_out in zip(st[0], out[0], strict=True):
        for res_in, res_out in zip(ch_in, ch_out, strict=True):
            alts = {a.altloc for a in res_in if a.has_altloc()}
            assert not any(a.has_altloc() for a in res_out)
            assert all(a.occ == 1.0 for a in res_out)
            if not alts:
                continue
            split += 1
            mean = {
                alt: np.mean([a.occ for a in res_in if a.altloc == alt]) for alt in sorted(alts)
            }
            heaviest = max(mean, key=lambda alt: (mean[alt], -ord(alt)))
            for atom in res_out:
                # Every kept atom is the heaviest altloc's copy (or a blank one), same place.
                twin = [a for a in res_in if a.name == atom.name]
                match = [a for a in twin if a.altloc in (heaviest, "\0")]
                assert match and match[0].pos.dist(atom.pos) < 1e-6
    assert split >= 40  # 3K0N's deposited model has altlocs on ~44 residues
    # Waters stay: they carry density that a map calculation should explain.
    assert sum(r.is_water() for ch in out[0] for r in ch) > 100


def test_observations_prefer_amplitudes_with_their_sigma():
    cols = {"H": "H", "K": "H", "L": "H", "IOBS": "J", "SIGIOBS": "Q", "FOBS": "F", "SIGFOBS": "Q"}
    assert labels.pick_observations(cols) == ("FOBS", "SIGFOBS")
    del cols["SIGFOBS"]
    assert labels.pick_observations(cols) == ("IOBS", "SIGIOBS")
    assert labels.pick_observations({"FC": "F", "PHIC": "P"}) is None  # calculated, no sigma


def test_coefficients_need_an_amplitude_and_a_phase_column():
    cols = {"2FOFCWT": "F", "PH2FOFCWT": "P", "FWT": "F", "PHWT": "P"}
    assert labels.pick_pair(cols, labels.TWO_FOFC_LABELS) == ("2FOFCWT", "PH2FOFCWT")
    assert labels.pick_pair({"FWT": "F", "PHWT": "F"}, labels.TWO_FOFC_LABELS) is None
    assert labels.pick_pair({"DELFWT": "F", "PHDELWT": "P"}, labels.FOFC_LABELS) == (
        "DELFWT",
        "PHDELWT",
    )
