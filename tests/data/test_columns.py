"""Choosing columns of the user's data files, by header name or index."""

from __future__ import annotations

import numpy as np
import pytest

from pyrovae.cli import main
from pyrovae.data import load_data
from pyrovae.errors import DataError

CSV = "name,height,weight,age\n" + "\n".join(
    f"p{i},{1.5 + i / 50:.2f},{50 + i},{20 + i}" for i in range(30)
)


@pytest.fixture
def people(tmp_path):
    path = tmp_path / "people.csv"
    path.write_text(CSV + "\n")
    return path


def test_by_name_and_index(people):
    d = load_data(str(people), columns=["weight", "1"], val_fraction=0, test_fraction=0)
    assert d.train.shape == (30, 2)
    assert sorted(d.train[:, 0].tolist()) == [50.0 + i for i in range(30)]
    assert sorted(round(v, 2) for v in d.train[:, 1].tolist()) == [
        round(1.5 + i / 50, 2) for i in range(30)
    ]


def test_text_column_needs_choosing(people):
    with pytest.raises(DataError, match="choose numeric columns with --columns"):
        load_data(str(people))
    with pytest.raises(DataError, match="column 'hieght' is not in .*the header has: name"):
        load_data(str(people), columns=["hieght"])


def test_npy_columns_by_index(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(40.0).reshape(10, 4))
    d = load_data(str(tmp_path / "x.npy"), columns=["0", "3"], val_fraction=0, test_fraction=0)
    assert sorted(d.train[:, 1].tolist()) == [4.0 * i + 3 for i in range(10)]
    with pytest.raises(DataError, match="out of range"):
        load_data(str(tmp_path / "x.npy"), columns=["7"])
    with pytest.raises(DataError, match="data files, not to the dataset 'digits'"):
        load_data("digits", columns=["0"])


def test_columns_from_the_cli_and_evaluate(people, tmp_path, capsys):
    run = tmp_path / "run"
    argv = [
        "train",
        "--data",
        str(people),
        "--columns",
        "height,weight,age",
        "--scale",
        "standardize",
        "--epochs",
        "2",
        "--hidden",
        "8",
        "--latent-dim",
        "1",
        "--no-progress",
        "-o",
        str(run),
    ]
    assert main(argv) == 0
    assert 'columns = ["height", "weight", "age"]' in (run / "config.toml").read_text()
    capsys.readouterr()
    assert main(["evaluate", str(run), "--split", "val"]) == 0
