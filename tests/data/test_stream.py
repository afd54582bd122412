"""Streaming a .npy file larger than memory: MemmapArray, streamed splits, scaling and
validation in chunks, training on a stream (identical to training in memory), and the
process's memory not growing with the size of the file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyro
import pytest
import torch

import pyrovae.data.stream as stream_mod
from pyrovae.api import AE, VAE
from pyrovae.cli import main
from pyrovae.data import MemmapArray, TensorBatches, load_data
from pyrovae.data import datasets as datasets_mod
from pyrovae.data.stream import feature_moments, feature_range, is_stream
from pyrovae.data.validation import check_support
from pyrovae.errors import DataError

SMALL = dict(hidden=(16,), latent_dim=2, epochs=2, batch_size=64, patience=0)


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of a few rows, so that every chunked pass really has many chunks."""
    monkeypatch.setattr(stream_mod, "CHUNK_BYTES", 200)


def _save(path: Path, arr: np.ndarray) -> Path:
    np.save(path, arr)
    return path


@pytest.fixture
def table(tmp_path) -> tuple[Path, np.ndarray]:
    arr = np.random.default_rng(0).normal(size=(300, 6)) * [1, 2, 3, 4, 5, 6] + 10
    return _save(tmp_path / "t.npy", arr), arr


@pytest.fixture
def images(tmp_path) -> tuple[Path, np.ndarray]:
    arr = np.random.default_rng(1).random((400, 1, 8, 8)).astype(np.float32)
    return _save(tmp_path / "img.npy", arr), arr


def _f32(a) -> torch.Tensor:
    return torch.tensor(np.asarray(a), dtype=torch.float32)


# -- the array --------------------------------------------------------------------------


def test_indexing_matches_numpy(table, small_chunks):
    path, arr = table
    x = MemmapArray(path)
    assert x.shape == (300, 6) and len(x) == 300 and x.dim() == 2 and x.reader == "pread"
    idx = torch.randperm(300, generator=torch.Generator().manual_seed(0))[:70]
    assert torch.equal(x[idx], _f32(arr[idx.numpy()]))  # the order asked for is kept
    assert torch.equal(x[np.array([5, 5, -1, 0])], _f32(arr[[5, 5, -1, 0]]))
    assert torch.equal(x[10:40:3], _f32(arr[10:40:3]))
    assert torch.equal(x[-2], _f32(arr[-2]))
    assert torch.equal(x[3:9, 2], _f32(arr[3:9, 2]))
    mask = np.zeros(300, dtype=bool)
    mask[[1, 100, 299]] = True
    assert torch.equal(x[torch.from_numpy(mask)], _f32(arr[mask]))
    with pytest.raises(IndexError):
        x[300]
    with pytest.raises(IndexError):
        x[torch.tensor([0, 300])]


def test_views_compose_without_copies(table, small_chunks):
    path, arr = table
    x = MemmapArray(path)
    perm = np.random.default_rng(2).permutation(300)
    v = x.take(perm).take(slice(50, 250)).columns([4, 0])
    expect = arr[perm][50:250][:, [4, 0]]
    assert v.shape == (200, 2)
    assert torch.equal(v[:], _f32(expect))
    assert torch.equal(v.to_tensor(), _f32(expect))
    # chunks: every row once; in file order by default, in the view's order if asked
    rows = torch.cat(list(v.chunks()))
    assert torch.equal(rows[torch.argsort(rows[:, 0])], _f32(expect)[np.argsort(expect[:, 0])])
    assert torch.equal(torch.cat(list(v.chunks(ordered=True))), _f32(expect))
    # a view holds only its row numbers
    assert v._rows.shape == (200,) and v._file is x._file
    m = v.map(lambda t: 2 * t + 1)
    assert torch.equal(m[:5], 2 * _f32(expect[:5]) + 1)
    r = MemmapArray(path).reshape_rows((2, 3))
    assert r.shape == (300, 2, 3) and torch.equal(r[7], _f32(arr[7].reshape(2, 3)))


@pytest.mark.parametrize("dtype", ["<f8", ">f4", "<i2", "|u1", "|b1"])
def test_file_dtypes_are_read_as_float32(tmp_path, dtype):
    arr = (np.random.default_rng(0).random((50, 3)) * 100).astype(dtype)
    x = MemmapArray(_save(tmp_path / "x.npy", arr))
    idx = torch.tensor([3, 1, 49])
    assert x[idx].dtype == torch.float32
    assert torch.equal(x[idx], _f32(arr[[3, 1, 49]].astype(np.float64)))


def test_mmap_reader_and_fortran_order(tmp_path):
    arr = np.asfortranarray(np.random.default_rng(0).random((40, 5)))
    path = _save(tmp_path / "f.npy", arr)
    x = MemmapArray(path)
    assert x.reader == "mmap"  # rows of a Fortran-ordered array are not contiguous
    assert torch.equal(x[torch.tensor([7, 2])], _f32(arr[[7, 2]]))
    with pytest.raises(DataError, match="Fortran order"):
        MemmapArray(path, reader="pread")
    c = MemmapArray(_save(tmp_path / "c.npy", np.ascontiguousarray(arr)), reader="mmap")
    assert torch.equal(c[5:9], _f32(arr[5:9]))


def test_statistics_in_chunks_equal_the_in_memory_ones(table, small_chunks):
    path, arr = table
    v = MemmapArray(path).take(np.random.default_rng(3).permutation(300)[:200])
    ref = v.to_tensor()
    mean, sd = feature_moments(v)
    torch.testing.assert_close(mean, ref.mean(0), atol=1e-5, rtol=1e-6)
    torch.testing.assert_close(sd, ref.std(0, unbiased=False), atol=1e-5, rtol=1e-6)
    lo, hi = feature_range(v)
    assert torch.equal(lo, ref.min(0).values) and torch.equal(hi, ref.max(0).values)
    const = MemmapArray(_save(path.with_name("c.npy"), np.full((99, 2), 0.1)))
    assert torch.equal(feature_moments(const)[1], torch.zeros(2))  # exactly 0, not ~1e-9


# -- load_data ----------------------------------------------------------------------------


@pytest.mark.parametrize("scale", ["none", "standardize", "minmax"])
def test_streamed_splits_equal_the_in_memory_ones(table, small_chunks, scale):
    path, _ = table
    mem = load_data(str(path), scale=scale)
    st = load_data(str(path), scale=scale, stream=True)
    for split in ("train", "val", "test"):
        s = st.split(split)
        assert is_stream(s) and s.path == path and s._file is st.train._file
        exact = scale == "none"
        torch.testing.assert_close(
            s.to_tensor(), mem.split(split), atol=0 if exact else 1e-5, rtol=0 if exact else 1e-5
        )
    assert st.likelihood == mem.likelihood and st.data_shape == mem.data_shape
    if scale != "none":
        torch.testing.assert_close(st.scaler.shift, mem.scaler.shift, atol=1e-5, rtol=1e-6)
        torch.testing.assert_close(st.scaler.scale, mem.scaler.scale, atol=1e-5, rtol=1e-6)


def test_streamed_images_columns_and_binarization(images, tmp_path):
    path, arr = images
    d = load_data(str(path), stream=True, binarize="static")
    assert d.is_image and d.likelihood == "bernoulli" and d.data_shape == (1, 8, 8)
    assert torch.equal(d.train.to_tensor(), load_data(str(path), binarize="static").train)
    hw = _save(tmp_path / "hw.npy", arr[:, 0])  # (N, H, W) gets a channel axis
    assert load_data(str(hw), stream=True).data_shape == (1, 8, 8)
    t = _save(tmp_path / "tab.npy", arr.reshape(400, -1))
    d = load_data(str(t), stream=True, columns=["3", "-1"])
    assert d.data_shape == (2,)
    torch.testing.assert_close(d.train.to_tensor(), load_data(str(t), columns=["3", "-1"]).train)


def test_large_files_are_streamed_automatically(table, monkeypatch):
    path, _ = table
    assert not is_stream(load_data(str(path)).train)
    monkeypatch.setattr(datasets_mod, "_available_memory", lambda: path.stat().st_size)
    assert is_stream(load_data(str(path)).train)  # larger than half the memory available


# -- training on a stream -----------------------------------------------------------------


def test_batches_of_a_stream_equal_batches_of_the_tensor(images):
    path, arr = images
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a = list(TensorBatches(_f32(arr), 64, shuffle=True, generator=g1))
    b = list(TensorBatches(MemmapArray(path), 64, shuffle=True, generator=g2))
    assert len(a) == len(b) == 7 and all(torch.equal(p.x, q.x) for p, q in zip(a, b, strict=True))


@pytest.mark.parametrize("cls", [VAE, AE])
def test_fitting_a_stream_equals_fitting_the_array(images, cls):
    path, arr = images
    val = MemmapArray(path).take(slice(0, 50))
    a = cls(**SMALL).fit(arr, X_val=arr[:50])
    b = cls(**SMALL).fit(MemmapArray(path), X_val=val)
    assert [h["train_loss"] for h in a.history_] == [h["train_loss"] for h in b.history_]
    assert [h["val_loss"] for h in a.history_] == [h["val_loss"] for h in b.history_]
    pyro.set_rng_seed(1)
    streamed = b.evaluate(MemmapArray(path))
    pyro.set_rng_seed(1)
    assert streamed == a.evaluate(arr)
    # inference methods read a stream into memory
    assert torch.equal(b.reconstruct(val), a.reconstruct(arr[:50]))


def test_fit_labels_must_match_the_rows(images):
    path, _ = images
    with pytest.raises(DataError, match="^y has 3 labels but X has 400 rows$"):
        VAE(**SMALL).fit(MemmapArray(path), y=[0, 1, 2])


def test_cli_trains_evaluates_and_resumes_a_stream(images, tmp_path, capsys):
    path, _ = images
    run = tmp_path / "run"
    tiny = ["--hidden", "8", "--latent-dim", "2", "--no-progress"]
    assert (
        main(["train", "--data", str(path), "--stream", "--epochs", "1", *tiny, "-o", str(run)])
        == 0
    )
    assert "stream = true" in (run / "config.toml").read_text()
    ref = tmp_path / "ref"
    assert main(["train", "--data", str(path), "--epochs", "1", *tiny, "-o", str(ref)]) == 0
    capsys.readouterr()

    def losses(folder):
        return [line.split(",")[2:10] for line in (folder / "metrics.csv").read_text().split()]

    assert losses(run) == losses(ref)  # identical training, in memory or streamed
    pyro.set_rng_seed(3)
    assert main(["evaluate", str(run), "--particles", "2"]) == 0
    streamed = json.loads(capsys.readouterr().out)
    pyro.set_rng_seed(3)
    assert main(["evaluate", str(ref), "--particles", "2"]) == 0
    assert streamed["elbo"] == json.loads(capsys.readouterr().out)["elbo"]
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 0
    assert (run / "metrics.csv").read_text().count("\n") == 3


# -- bad streamed data: the same one-line messages as in memory --------------------------


def _with(value, at=(7, 2)) -> np.ndarray:
    x = np.random.default_rng(0).random((30, 4))
    x[at] = value
    return x


@pytest.mark.parametrize(
    ("arr", "expected"),
    [
        (_with(np.nan), "contains 1 NaN or Inf value(s), first at index (7, 2)"),
        (_with(np.inf, at=(29, 3)), "contains 1 NaN or Inf value(s), first at index (29, 3)"),
        (np.arange(30.0), "must have at least 2 dimensions (N, features...); got shape (30,)"),
        (np.zeros((0, 4)), "is empty (0 rows)"),
        (np.zeros((30, 0)), "has no features (shape (30, 0))"),
        (np.array([["a", "b"]] * 30), "must be numeric; got dtype <U1"),
        (np.ones((3, 2), dtype=complex), "must be real-valued; got dtype complex128"),
        (np.array([[1.0, None]] * 30, dtype=object), "holds Python objects (dtype object)"),
    ],
    ids=["nan", "inf", "1d", "empty", "no-features", "strings", "complex", "object"],
)
def test_bad_streamed_data_is_one_line(tmp_path, arr, expected, small_chunks):
    np.save(tmp_path / "x.npy", arr, allow_pickle=True)
    with pytest.raises(DataError) as info:
        load_data(str(tmp_path / "x.npy"), stream=True)
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_nan_in_a_shuffled_view_is_located_in_the_view(tmp_path, small_chunks):
    x = MemmapArray(_save(tmp_path / "x.npy", _with(np.nan, at=(20, 1))))
    with pytest.raises(DataError, match=r"first at index \(9, 1\)$"):
        x.take(torch.arange(29, -1, -1)).check_finite("X")


def test_support_is_checked_in_chunks_with_the_in_memory_message(tmp_path, small_chunks):
    arr = np.random.default_rng(0).random((60, 4))
    arr[[5, 40], [1, 3]] = [2.0, 3.5]
    lik = VAE(likelihood="bernoulli", **SMALL)
    lik.build((4,), "bernoulli")
    with pytest.raises(DataError) as mem:
        check_support(lik.module_.likelihood, _f32(arr))
    with pytest.raises(DataError) as st:
        check_support(lik.module_.likelihood, MemmapArray(_save(tmp_path / "x.npy", arr)))
    assert str(st.value) == str(mem.value)
    assert "2 value(s) lie outside it (e.g. 2; data range" in str(st.value)


def test_truncated_and_unstreamable_inputs(tmp_path, images):
    path, _ = images
    cut = tmp_path / "cut.npy"
    cut.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match=r"it is truncated \(5000 bytes; its header promises"):
        MemmapArray(cut)
    (tmp_path / "x.csv").write_text("1,2\n3,4\n")
    with pytest.raises(DataError, match="^--stream reads .npy files; save 'x.csv' with numpy"):
        load_data(str(tmp_path / "x.csv"), stream=True)
    with pytest.raises(DataError, match="not to the dataset 'digits'"):
        load_data("digits", stream=True)
    with pytest.raises(DataError, match="with --stream use --binarize static"):
        load_data(str(path), stream=True, binarize="dynamic")


# -- memory ------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import json, resource, sys, threading, time

    def status():
        out = {}
        with open("/proc/self/status") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in ("RssAnon", "RssFile", "VmHWM"):
                    out[key] = int(value.split()[0]) / 1024  # MiB
        return out

    import matplotlib.pyplot, torch._dynamo  # imported by training anyway: part of the base
    from pyrovae.cli import main

    peak = status()
    done = threading.Event()

    def watch():  # RssAnon has no kernel high-water mark: sample it
        while not done.is_set():
            now = status()
            for key in ("RssAnon", "RssFile"):
                peak[key] = max(peak[key], now[key])
            time.sleep(0.005)

    base = status()
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    path, run = sys.argv[1:3]
    status_code = main(["train", "--data", path, "--stream", "--epochs", "1", "--hidden", "32",
                        "--latent-dim", "4", "--batch-size", "512", "--no-progress", "-o", run])
    done.set()
    thread.join()
    end = status()
    print(json.dumps({"status": status_code, "base": base, "peak_anon": peak["RssAnon"],
                      "peak_file": peak["RssFile"], "hwm": end["VmHWM"],
                      "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    """
)


def _write_images(path: Path, megabytes: int) -> float:
    """A float32 (N, 28, 28) file of about ``megabytes`` MB, written in chunks through a
    memory map (so this process never holds it); returns its size in MiB."""
    n = megabytes * 10**6 // (28 * 28 * 4)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, 28, 28))
    rng = np.random.default_rng(0)
    for a in range(0, n, 4096):
        out[a : a + 4096] = rng.random((min(4096, n - a), 28, 28), dtype=np.float32)
    out.flush()
    del out
    return path.stat().st_size / 2**20


def _train_in_child(path: Path, run: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(run)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["status"] == 0
    return out


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_memory_does_not_grow_with_the_file(tmp_path):
    """One epoch of `pyrovae train --stream` on ~100 MB and ~400 MB of float32 images.

    Tolerances: the process's own memory (RssAnon) above its level after the imports
    must stay below a quarter of the large file, and from the small file to the large
    one it may grow by at most 25 % of the 300 MB difference; the same bound holds for
    the kernel's exact high-water mark of the whole resident set (VmHWM, which counts
    mapped file pages too: pread-based reads keep the page cache out of it).
    ``ru_maxrss`` is printed but not used: on Linux a child started by fork + exec
    inherits its parent's peak in ``ru_maxrss`` (this test process has just written
    the file), while VmHWM belongs to the child's own address space.
    """
    figures = {}
    for mb in (100, 400):
        path = tmp_path / f"x{mb}.npy"
        size = _write_images(path, mb)
        figures[mb] = {"file": size, **_train_in_child(path, tmp_path / f"run{mb}")}
        path.unlink()
    print(json.dumps(figures, indent=1))  # shown with -s
    small, large = figures[100], figures[400]
    diff = large["file"] - small["file"]
    anon_growth = large["peak_anon"] - large["base"]["RssAnon"]
    assert anon_growth < 0.25 * large["file"], figures
    assert large["peak_anon"] - small["peak_anon"] < 0.25 * diff, figures
    assert large["hwm"] - small["hwm"] < 0.25 * diff, figures
    assert large["peak_file"] - small["peak_file"] < 0.25 * diff, figures
