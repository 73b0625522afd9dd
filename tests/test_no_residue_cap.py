"""No residue cap by default (issue 20): the 9,504-residue structure the 6,000 cap used to refuse
is accepted, and an operator's cap still refuses it with the message that names the cap."""

import pytest
from conftest import PRETRAIN, data_file

from qfitlatent import server_config
from qfitlatent.errors import StructureError
from qfitlatent.structure import read_structure


@pytest.fixture(scope="module")
def big():
    """5MR6: 9,504 residues in 18 chains, a real cryo-EM-sized asymmetric unit."""
    return read_structure(data_file("5mr6.pdb.gz", PRETRAIN))


def test_large_structures_are_accepted_unless_the_operator_sets_a_cap(big, monkeypatch):
    monkeypatch.delenv("QFITLATENT_MAX_RESIDUES", raising=False)
    monkeypatch.delenv(server_config.CONFIG_ENV, raising=False)
    assert len(big.residues) == 9504
    assert server_config.load().max_residues == 0
    server_config.check_prediction_size(big)  # no cap: nothing raised
    monkeypatch.setenv("QFITLATENT_MAX_RESIDUES", "6000")
    with pytest.raises(StructureError, match="has 9,504 residues; .* at most 6,000"):
        server_config.check_prediction_size(big)
