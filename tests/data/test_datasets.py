"""Loading data: the built-in digits, the user's .npy / .npz / .csv files, the MNIST
family from local IDX files, splitting and scaling."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from pyrovae.data import DATASETS, SCALERS, Scaler, load_data
from pyrovae.data.datasets import default_root, load_raw
from pyrovae.errors import DataError, RegistryError

# -- the built-in digits ---------------------------------------------------------------


def test_digits_shape_range_and_split_sizes(digits):
    assert digits.data_shape == (1, 8, 8) and digits.is_image
    assert (digits.train.shape[0], digits.val.shape[0], digits.test.shape[0]) == (1455, 162, 180)
    for split in (digits.train, digits.val, digits.test):
        assert split.dtype == torch.float32
        assert float(split.min()) == 0.0 and float(split.max()) == 1.0
    assert digits.likelihood == "bernoulli"
    assert digits.scaler.method == "none"
    assert [digits.labels(s).shape[0] for s in ("train", "val", "test")] == [1455, 162, 180]


def test_digits_splits_partition_the_data_and_keep_labels(digits):
    from sklearn.datasets import load_digits

    sk = load_digits()
    full = torch.tensor(sk.images, dtype=torch.float32).reshape(len(sk.images), -1) / 16.0
    labels = torch.tensor(sk.target)
    parts = torch.cat([digits.train, digits.val, digits.test]).reshape(len(full), -1)
    part_labels = torch.cat([digits.y_train, digits.y_val, digits.y_test])
    # Every image appears exactly once, with its own label.
    order_full = np.lexsort(full.numpy().T)
    order_parts = np.lexsort(parts.numpy().T)
    assert torch.equal(full[order_full], parts[order_parts])
    assert torch.equal(labels[order_full], part_labels[order_parts])


def test_split_is_deterministic_and_follows_split_seed(digits):
    again = load_data("digits", split_seed=0)
    assert torch.equal(again.train, digits.train) and torch.equal(again.test, digits.test)
    other = load_data("digits", split_seed=1)
    assert other.train.shape == digits.train.shape
    assert not torch.equal(other.test, digits.test)


@pytest.mark.parametrize(
    ("val_fraction", "test_fraction", "sizes"),
    [(0.2, 0.25, (1078, 270, 449)), (0.0, 0.0, (1797, 0, 0)), (0.5, 0.1, (809, 808, 180))],
)
def test_split_fractions(val_fraction, test_fraction, sizes):
    d = load_data("digits", val_fraction=val_fraction, test_fraction=test_fraction)
    assert (d.train.shape[0], d.val.shape[0], d.test.shape[0]) == sizes


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_bad_split_fraction(fraction):
    with pytest.raises(DataError, match="fraction must be in"):
        load_data("digits", val_fraction=fraction)


def test_unknown_split_name(digits):
    with pytest.raises(DataError, match="unknown split 'tset'"):
        digits.split("tset")


def test_registries_list_the_documented_names():
    assert {"digits", "mnist", "fashion-mnist"} <= set(DATASETS.names())
    assert set(SCALERS.names()) == {"none", "standardize", "minmax"}


# -- the user's own files --------------------------------------------------------------


def _table(n: int = 60, seed: int = 0) -> np.ndarray:
    """Continuous data with very different column locations and scales."""
    rng = np.random.default_rng(seed)
    return rng.normal(loc=[1.0, -5.0, 10.0], scale=[0.5, 2.0, 30.0], size=(n, 3))


def _sorted_rows(t: torch.Tensor) -> np.ndarray:
    a = t.numpy().reshape(t.shape[0], -1)
    return a[np.lexsort(a.T)]


def _all_rows(d) -> torch.Tensor:
    return torch.cat([d.train, d.val, d.test])


def test_npy_file(tmp_path):
    x = _table()
    np.save(tmp_path / "x.npy", x)
    d = load_data(str(tmp_path / "x.npy"))
    assert d.data_shape == (3,) and not d.is_image
    assert (d.train.shape[0], d.val.shape[0], d.test.shape[0]) == (49, 5, 6)
    np.testing.assert_allclose(_sorted_rows(_all_rows(d)), _sorted_rows(torch.tensor(x).float()))
    assert d.y_train is None


def test_npz_file_with_labels_keeps_them_aligned(tmp_path):
    n = 40
    x = np.repeat(np.arange(n, dtype=np.float64)[:, None], 4, axis=1)  # row i is all i
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(n))
    d = load_data(str(tmp_path / "d.npz"))
    for split in ("train", "val", "test"):
        xs, ys = d.split(split), d.labels(split)
        assert ys is not None and ys.shape[0] == xs.shape[0]
        assert torch.equal(xs[:, 0].long(), ys.long())
    assert sorted(torch.cat([d.y_train, d.y_val, d.y_test]).tolist()) == list(range(n))


def test_npz_with_a_single_unnamed_array(tmp_path):
    np.savez(tmp_path / "d.npz", np.ones((10, 2)))
    raw = load_raw(str(tmp_path / "d.npz"))
    assert raw.x.shape == (10, 2) and raw.y is None


def test_npz_with_several_arrays_but_no_x(tmp_path):
    np.savez(tmp_path / "d.npz", a=np.ones((4, 2)), b=np.ones((4, 2)))
    with pytest.raises(DataError, match="name the data array 'x'"):
        load_raw(str(tmp_path / "d.npz"))


def test_npz_labels_of_the_wrong_length(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.ones((4, 2)), y=np.arange(5))
    with pytest.raises(DataError, match="labels 'y' .* have 5 rows but the data has 4"):
        load_raw(str(tmp_path / "d.npz"))


@pytest.mark.parametrize(
    ("header", "delimiter"), [(False, ","), (True, ","), (True, ";"), (False, ";")]
)
def test_csv_file(tmp_path, header, delimiter):
    x = _table(20)
    path = tmp_path / "x.csv"
    np.savetxt(
        path,
        x,
        delimiter=delimiter,
        header=delimiter.join(["a", "b", "c"]) if header else "",
        comments="",
    )
    raw = load_raw(str(path))
    assert raw.x.shape == (20, 3) and not raw.is_image
    np.testing.assert_allclose(raw.x.numpy(), x, rtol=1e-6)


def test_single_column_csv_with_header(tmp_path):
    (tmp_path / "x.csv").write_text("value\n1\n2\n3\n")
    assert load_raw(str(tmp_path / "x.csv")).x.tolist() == [[1.0], [2.0], [3.0]]


def test_image_files_get_a_channel_axis(tmp_path):
    np.save(tmp_path / "imgs.npy", np.random.default_rng(0).random((12, 8, 8)))
    raw = load_raw(str(tmp_path / "imgs.npy"))
    assert raw.x.shape == (12, 1, 8, 8) and raw.is_image and raw.likelihood == "bernoulli"


def test_continuous_data_defaults_to_gaussian(tmp_path):
    np.save(tmp_path / "x.npy", _table())
    assert load_data(str(tmp_path / "x.npy")).likelihood == "gaussian"
    # images outside [0, 1] are continuous too
    np.save(tmp_path / "imgs.npy", 255 * np.random.default_rng(0).random((12, 1, 8, 8)))
    assert load_data(str(tmp_path / "imgs.npy")).likelihood == "gaussian"
    # binary data of any shape (e.g. flat binarized images) defaults to Bernoulli
    np.save(tmp_path / "bits.npy", np.random.default_rng(0).integers(0, 2, (30, 4)))
    assert load_data(str(tmp_path / "bits.npy")).likelihood == "bernoulli"
    # but grey levels in [0, 1] without an image shape are continuous
    np.save(tmp_path / "unit.npy", np.random.default_rng(0).random((30, 4)))
    assert load_data(str(tmp_path / "unit.npy")).likelihood == "gaussian"


def test_standardized_images_default_to_gaussian():
    """Scaling moves [0, 1] images out of the Bernoulli support."""
    d = load_data("digits", scale="standardize")
    assert d.likelihood == "gaussian" and float(d.train.min()) < 0


def test_dataset_name_typo_suggests_the_name():
    with pytest.raises(DataError, match=r"unknown dataset 'digts' \(did you mean 'digits'\?\)"):
        load_data("digts")


# -- scaling ---------------------------------------------------------------------------


@pytest.fixture
def table_file(tmp_path) -> str:
    path = tmp_path / "table.npy"
    np.save(path, _table(200))
    return str(path)


def test_scale_none_leaves_data_alone(table_file):
    d = load_data(table_file, scale="none")
    raw = torch.tensor(np.load(table_file), dtype=torch.float32)
    np.testing.assert_array_equal(_sorted_rows(_all_rows(d)), _sorted_rows(raw))
    assert d.scaler.shift is None and torch.equal(d.scaler.inverse(d.train), d.train)


def test_standardize_is_fitted_on_the_training_split(table_file):
    plain = load_data(table_file, scale="none")
    d = load_data(table_file, scale="standardize")
    torch.testing.assert_close(d.train.mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(d.train.std(0, unbiased=False), torch.ones(3), atol=1e-5, rtol=0)
    # the statistics are the training split's, not the whole data's
    torch.testing.assert_close(d.scaler.shift, plain.train.mean(0))
    full_mean = _all_rows(plain).mean(0)
    assert not torch.allclose(d.scaler.shift, full_mean, atol=1e-4, rtol=0)
    torch.testing.assert_close(d.val, (plain.val - d.scaler.shift) / d.scaler.scale)
    # the stored scaler maps every split back to the data's units
    for split in ("train", "val", "test"):
        torch.testing.assert_close(d.scaler.inverse(d.split(split)), plain.split(split))


def test_minmax_is_fitted_on_the_training_split(table_file):
    plain = load_data(table_file, scale="none")
    d = load_data(table_file, scale="minmax")
    torch.testing.assert_close(d.train.min(0).values, torch.zeros(3), atol=1e-6, rtol=0)
    torch.testing.assert_close(d.train.max(0).values, torch.ones(3), atol=1e-6, rtol=0)
    torch.testing.assert_close(d.scaler.shift, plain.train.min(0).values)
    for split in ("train", "val", "test"):
        torch.testing.assert_close(
            d.scaler.inverse(d.split(split)), plain.split(split), atol=1e-4, rtol=1e-5
        )


@pytest.mark.parametrize("method", ["standardize", "minmax"])
def test_constant_features_do_not_divide_by_zero(method):
    x = torch.cat([torch.randn(50, 1), torch.full((50, 1), 3.0)], dim=1)
    s = Scaler(method).fit(x)
    out = s.transform(x)
    assert torch.isfinite(out).all() and torch.all(out[:, 1] == 0)
    torch.testing.assert_close(s.inverse(out), x)


@pytest.mark.parametrize("method", ["none", "standardize", "minmax"])
def test_scaler_state_round_trips(method):
    x = torch.randn(30, 4) * 5 + 2
    s = Scaler(method).fit(x)
    s2 = Scaler.from_state(s.state_dict())
    torch.testing.assert_close(s2.transform(x), s.transform(x))
    torch.testing.assert_close(s2.inverse(s2.transform(x)), x, atol=1e-5, rtol=1e-5)


def test_unknown_scaling_suggests_the_name():
    with pytest.raises(RegistryError, match=r"did you mean 'standardize'\?"):
        load_data("digits", scale="standardise")


# -- MNIST and Fashion-MNIST from local files -------------------------------------------


MNIST_FAMILY = [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")]


def write_idx(root: Path, folder: str, n_train: int = 12, n_test: int = 5) -> dict:
    """Tiny valid (uncompressed) IDX files where torchvision looks for them."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        header = struct.pack(">iiii", 0x00000803, n, 28, 28)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(header + images.tobytes())
        header = struct.pack(">ii", 0x00000801, n)
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(header + labels.tobytes())
        arrays[prefix] = (images, labels)
    return arrays


@pytest.fixture
def no_download(monkeypatch):
    """Fail loudly if anything tries to download (tests never touch the network)."""
    import torchvision.datasets as tvd

    calls = []
    for cls in (tvd.MNIST, tvd.FashionMNIST):
        monkeypatch.setattr(cls, "download", lambda self: calls.append(type(self).__name__))
    yield calls
    assert calls == []


@pytest.mark.parametrize(("name", "folder"), MNIST_FAMILY)
def test_mnist_family_from_local_idx_files(tmp_path, no_download, name, folder):
    arrays = write_idx(tmp_path, folder)
    d = load_data(name, root=str(tmp_path), download=False, val_fraction=0.25)
    # the official test split is kept; validation comes out of the training split
    assert (d.train.shape[0], d.val.shape[0], d.test.shape[0]) == (9, 3, 5)
    assert d.data_shape == (1, 28, 28) and d.is_image and d.likelihood == "bernoulli"
    test_images, test_labels = arrays["t10k"]
    torch.testing.assert_close(d.test, torch.tensor(test_images).float().unsqueeze(1) / 255.0)
    assert d.y_test.tolist() == test_labels.tolist()
    train_images = torch.tensor(arrays["train"][0]).float().unsqueeze(1) / 255.0
    np.testing.assert_array_equal(
        _sorted_rows(torch.cat([d.train, d.val])), _sorted_rows(train_images)
    )


def test_mnist_root_defaults_to_pyrovae_data(tmp_path, monkeypatch, no_download):
    write_idx(tmp_path, "MNIST")
    monkeypatch.setenv("PYROVAE_DATA", str(tmp_path))
    assert default_root() == tmp_path
    assert load_data("mnist", download=False).test.shape == (5, 1, 28, 28)


@pytest.mark.parametrize(("name", "folder"), MNIST_FAMILY)
def test_missing_mnist_offline_says_where_to_put_the_files(tmp_path, no_download, name, folder):
    with pytest.raises(DataError) as info:
        load_data(name, root=str(tmp_path), download=False)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(tmp_path / folder / "raw") in msg
    assert "downloading is off" in msg
    for f in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"):
        assert f in msg
