"""A training run's loss curves, drawn from the run log's series."""

from test_runlog import epoch as _epoch
from test_runlog import step as _step

from qfitlatent.train import runlog
from qfitlatent.viz import curves


def _traces(records):
    return {t.name: t for t in curves.training_curves(runlog.loss_series(records)).data}


def test_plotly_curves_draw_the_runlog_series():
    records = [_step(2, 5.0), _step(4, 4.5), _epoch(4, 4.7, 4.9, 4.9)]
    by_name = _traces(records)
    assert list(by_name["training loss (window)"].x) == [2, 4]
    assert list(by_name["training loss (epoch mean)"].y) == [4.7]
    assert list(by_name["validation NLL"].y) == [4.9]  # one epoch: still drawn, as a marker
    assert "markers" in by_name["validation NLL"].mode
    # Without validation the epoch-mean loss is still drawn and the NLL trace is empty.
    no_val = _traces([*records[:2], _epoch(4, 4.7, None, None)])
    assert list(no_val["training loss (epoch mean)"].y) == [4.7]
    assert list(no_val["validation NLL"].y) == []
