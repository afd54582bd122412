"""Choosing columns of the user's data files, by header name or index."""

from __future__ import annotations

import numpy as np
import pytest
import torch

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


# -- feature names, --drop-columns and --label-column ------------------------------


def test_header_names_are_the_feature_names(people):
    d = load_data(str(people), columns=["weight", "1"], test_fraction=0)
    assert d.feature_names == ["weight", "height"]


def test_a_file_without_a_header_has_no_names(tmp_path):
    np.savetxt(tmp_path / "x.csv", np.arange(40.0).reshape(10, 4), delimiter=",")
    assert load_data(str(tmp_path / "x.csv")).feature_names is None


@pytest.mark.parametrize("drop", [["name"], ["0"], ["-4"]])
def test_drop_columns_by_name_and_index(people, drop):
    d = load_data(str(people), drop_columns=drop, val_fraction=0, test_fraction=0)
    assert d.feature_names == ["height", "weight", "age"]
    assert sorted(d.train[:, 2].tolist()) == [20.0 + i for i in range(30)]


def test_drop_columns_after_choosing_columns(people):
    d = load_data(str(people), columns=["age", "weight", "height"], drop_columns=["weight"])
    assert d.feature_names == ["age", "height"]


def test_dropping_an_unknown_column_names_it(people):
    with pytest.raises(DataError) as info:
        load_data(str(people), drop_columns=["name", "wieght"])
    assert str(info.value) == (
        f"--drop-columns: column 'wieght' is not in {str(people)!r}; the header has: "
        "name, height, weight, age"
    )
    with pytest.raises(DataError, match="--drop-columns: column index 4 is out of range for"):
        load_data(str(people), drop_columns=["4"])


def test_dropping_every_column_is_an_error(people, tmp_path):
    with pytest.raises(DataError) as info:
        load_data(str(people), drop_columns=["name", "height", "weight", "age"])
    assert str(info.value) == (
        f"no feature columns of {str(people)!r} are left after leaving out 'name', 'height', "
        "'weight', 'age'"
    )
    np.save(tmp_path / "x.npy", np.arange(6.0).reshape(3, 2))
    with pytest.raises(DataError, match="no feature columns of 'x.npy' are left after leaving "):
        load_data(str(tmp_path / "x.npy"), drop_columns=["0", "1"])


def test_npy_drop_columns_by_index(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(40.0).reshape(10, 4))
    d = load_data(str(tmp_path / "x.npy"), drop_columns=["1", "2"], val_fraction=0, test_fraction=0)
    assert sorted(d.train[:, 1].tolist()) == [4.0 * i + 3 for i in range(10)]
    assert d.feature_names is None


def test_npz_feature_names_name_the_columns(tmp_path):
    x = np.arange(30.0).reshape(10, 3)
    np.savez(tmp_path / "x.npz", x=x, feature_names=np.array(["a", "b", "c"]))
    d = load_data(str(tmp_path / "x.npz"), drop_columns=["b"], val_fraction=0, test_fraction=0)
    assert d.feature_names == ["a", "c"]
    assert sorted(d.train[:, 1].tolist()) == [3.0 * i + 2 for i in range(10)]
    np.savez(tmp_path / "bad.npz", x=x, feature_names=np.array(["a", "b"]))
    with pytest.raises(DataError, match="names 2 columns in 'feature_names' but its data have"):
        load_data(str(tmp_path / "bad.npz"))


def test_column_options_do_not_apply_to_named_datasets():
    for option in ("drop_columns", "label_column"):
        flag = "--" + option.replace("_", "-")
        with pytest.raises(DataError, match=f"{flag} applies to data files, not to the dataset"):
            load_data("digits", **{option: ["0"] if option == "drop_columns" else "0"})


STRING_LABELS = "x1,species,x2\n" + "\n".join(
    f"{i / 10:.1f},{['setosa', 'virginica', 'versicolor'][i % 3]},{i}.5" for i in range(30)
)


def test_string_labels_become_classes(tmp_path):
    path = tmp_path / "iris.csv"
    path.write_text(STRING_LABELS + "\n")
    d = load_data(str(path), label_column="species", val_fraction=0, test_fraction=0)
    assert d.feature_names == ["x1", "x2"] and d.data_shape == (2,)
    assert d.classes == ["setosa", "versicolor", "virginica"]  # sorted
    # every row keeps its own label: the class of x1 = i / 10 is i % 3 of the list above
    want = {0: "setosa", 1: "virginica", 2: "versicolor"}
    for x1, y in zip(d.train[:, 0].tolist(), d.y_train.tolist(), strict=True):
        assert d.classes[y] == want[round(x1 * 10) % 3]


def test_integer_labels_keep_their_values_and_map_onto_a_runs_classes(tmp_path):
    x = np.c_[np.arange(20.0), np.arange(20) % 2 * 3 + 1]  # labels 1 and 4
    np.save(tmp_path / "x.npy", x)
    d = load_data(str(tmp_path / "x.npy"), label_column="-1", val_fraction=0, test_fraction=0)
    assert d.classes == [1, 4] and d.data_shape == (1,)
    assert all(
        d.classes[y] == int(v) % 2 * 3 + 1 for v, y in zip(d.train[:, 0], d.y_train, strict=True)
    )
    # a run's classes, given: labels map onto them (4 is class 0 here)
    again = load_data(
        str(tmp_path / "x.npy"), label_column="1", classes=[4, 1], val_fraction=0, test_fraction=0
    )
    torch.testing.assert_close(again.y_train, 1 - d.y_train)
    with pytest.raises(DataError, match="holds the label 1, which is not one of the run's"):
        load_data(str(tmp_path / "x.npy"), label_column="1", classes=[4, 7])


def test_a_label_column_with_one_class_is_an_error(tmp_path):
    single = tmp_path / "one.csv"
    single.write_text("a,b\n1.5,0\n2.5,0\n3.5,0\n")
    with pytest.raises(DataError) as info:
        load_data(str(single), label_column="b")
    assert str(info.value) == (
        "label column 'b' of 'one.csv' has a single class (0); a label needs two or more"
    )


def test_stream_drop_and_label_columns(tmp_path):
    x = np.c_[np.arange(20.0), np.arange(20) % 2, np.ones(20)]
    np.save(tmp_path / "x.npy", x)
    d = load_data(
        str(tmp_path / "x.npy"),
        stream=True,
        drop_columns=["2"],
        label_column="1",
        val_fraction=0,
        test_fraction=0,
    )
    rows = d.train[:20]
    assert rows.shape == (20, 1) and d.classes == [0, 1]
    assert [int(v) % 2 for v in rows[:, 0]] == d.y_train.tolist()


# -- condition columns ------------------------------------------------------------------


def test_condition_columns_of_a_csv(people):
    d = load_data(
        str(people),
        drop_columns=["name"],
        condition_columns=["age", "1"],
        val_fraction=0.2,
        test_fraction=0.1,
    )
    assert d.data_shape == (1,)  # weight only: height (index 1) and age are conditions
    assert d.condition_names == ["age", "height"]
    for split in ("train", "val", "test"):
        x, c = d.split(split), d.conditions(split)
        assert c.shape == (x.shape[0], 2) and c.dtype == torch.float32
        # each row keeps its own conditions: weight = 50 + i, age = 20 + i
        torch.testing.assert_close(c[:, 0], x[:, 0] - 30.0)
        torch.testing.assert_close(c[:, 1], 1.5 + (x[:, 0] - 50.0) / 50, atol=6e-3, rtol=0)


def test_condition_columns_of_an_npz(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.normal(size=(40, 4)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=arr, feature_names=np.array(["a", "b", "c", "d"]))
    d = load_data(str(tmp_path / "d.npz"), condition_columns=["d"], val_fraction=0, test_fraction=0)
    assert d.data_shape == (3,) and d.condition_names == ["d"]
    rows = {tuple(np.round(r, 5)) for r in np.c_[d.train.numpy(), d.conditions_train.numpy()]}
    assert rows == {tuple(np.round(r, 5)) for r in arr}


def test_bad_condition_columns(people):
    with pytest.raises(DataError, match="--condition-columns: column 'size' is not in"):
        load_data(str(people), drop_columns=["name"], condition_columns=["size"])
    with pytest.raises(DataError, match="is also the --label-column"):
        load_data(str(people), label_column="name", condition_columns=["name"])
    with pytest.raises(DataError, match="--condition-columns applies to data files"):
        load_data("digits", condition_columns=["1"])


def test_labels_with_a_single_class(tmp_path):
    (tmp_path / "one.csv").write_text("a,b,label\n" + "\n".join(f"{i},{i},x" for i in range(9)))
    with pytest.raises(DataError, match="has a single class"):
        load_data(str(tmp_path / "one.csv"), label_column="label")
