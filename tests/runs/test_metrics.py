"""metrics.csv: the trainer's writer and the report's reader are one module."""

from __future__ import annotations

import csv
import math

from pyrovae.runs import METRIC_COLUMNS, read_metrics, write_metrics
from pyrovae.runs.names import METRICS


def _row(epoch: int) -> dict:
    return {
        "epoch": epoch,
        "beta": 1.0,
        "train_loss": 1 / 3 + epoch,
        "train_elbo": -(1 / 3 + epoch),
        "val_loss": math.nan,
        "seconds": 0.5,
        "lr": 1e-3,
        "not_a_column": "dropped",
    }


def test_write_then_read_round_trips_to_six_digits(tmp_path):
    history = [_row(1), _row(2)]
    path = write_metrics(tmp_path, history)
    assert path == tmp_path / METRICS
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == METRIC_COLUMNS
        raw = list(reader)
    assert raw[0]["train_loss"] == "1.33333"  # floats to 6 significant digits
    assert raw[0]["epoch"] == "1" and raw[0]["val_recon"] == ""
    rows = read_metrics(tmp_path)
    assert [r["epoch"] for r in rows] == [1.0, 2.0]
    assert rows[1]["train_elbo"] == -2.33333
    assert rows[0]["train_recon"] is None  # a column the row does not have
    assert math.isnan(rows[0]["val_loss"])
    assert "not_a_column" not in rows[0]
    assert [p.name for p in tmp_path.iterdir()] == [METRICS]  # no temporary left


def test_rewrite_replaces_the_file(tmp_path):
    write_metrics(tmp_path, [_row(1), _row(2), _row(3)])
    write_metrics(tmp_path, [_row(1)])  # a resume after a crash drops the lost epochs
    assert [r["epoch"] for r in read_metrics(tmp_path)] == [1.0]


def test_read_without_a_file_or_with_bad_cells(tmp_path):
    assert read_metrics(tmp_path) == []
    (tmp_path / METRICS).write_text("epoch,beta\n1,x\n2\n")
    assert read_metrics(tmp_path) == [{"epoch": 1.0, "beta": None}, {"epoch": 2.0, "beta": None}]


def test_the_training_package_exports_the_same_columns():
    from pyrovae.training import METRIC_COLUMNS as training_columns

    assert training_columns is METRIC_COLUMNS
