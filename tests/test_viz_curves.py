"""A training run's loss curves from its metrics records."""

from qfitlatent.viz import curves


def test_training_curves_split_step_and_epoch_records():
    records = [
        {"step": 2, "epoch": 0.5, "train_loss": 5.0, "val_nll": None},
        {"step": 4, "epoch": 1.0, "train_loss": 4.5, "val_nll": None},
        {"step": 4, "epoch": 1, "train_loss": 4.7, "val_nll": 4.9, "best_val_nll": 4.9},
    ]
    fig = curves.training_curves(records)
    by_name = {t.name: t for t in fig.data}
    assert list(by_name["training loss (window)"].x) == [2, 4]
    assert list(by_name["validation NLL"].y) == [4.9]  # one epoch: still drawn, as a marker
    assert "markers" in by_name["validation NLL"].mode
