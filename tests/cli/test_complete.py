"""``pyrovae complete RUN --data PARTIAL``: completions, bands, figure and completion.nc for
images and tables, every method, and one-line errors that write nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pyrovae import arviz_compat as ax
from pyrovae.api import load as load_run
from pyrovae.cli import main
from pyrovae.data import Scaler, load_data
from pyrovae.runs import names


@pytest.fixture(scope="module")
def partial_digits(tmp_path_factory):
    """Three test digits (flattened), their bottom half missing (NaN), as .npy; and the
    complete rows."""
    x = load_data("digits").test[:3].reshape(3, 64).numpy()
    part = x.copy()
    part[:, 32:] = np.nan
    path = tmp_path_factory.mktemp("partial") / "partial.npy"
    np.save(path, part)
    return path, x


def _complete(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(["complete", *map(str, argv)])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize(
    "method, extra",
    [
        ("guide", []),
        ("svi", ["--steps", "5"]),
        ("nuts", ["--warmup", "5", "--chains", "1"]),
    ],
)
def test_images(capsys, run_copy, partial_digits, strict_json, assert_png, method, extra):
    path, x = partial_digits
    out_dir = run_copy / "out"
    status, out, err = _complete(
        capsys,
        run_copy,
        "--data",
        path,
        "--method",
        method,
        "--draws",
        "10",
        "-o",
        out_dir,
        *extra,
    )
    assert status == 0, err
    summary = strict_json(out)
    assert summary["method"] == method and summary["missing_entries"] == 3 * 32
    assert strict_json((out_dir / names.COMPLETION_JSON).read_text()) == summary
    mean = np.load(out_dir / names.COMPLETION_MEAN)
    assert mean.shape == (3, 1, 8, 8)
    flat = mean.reshape(3, 64)
    np.testing.assert_allclose(flat[:, :32], x[:, :32], rtol=1e-6)  # observed entries kept
    assert np.isfinite(flat).all() and (flat[:, 32:] >= 0).all() and (flat[:, 32:] <= 1).all()
    bands = np.load(out_dir / names.COMPLETION_BANDS)
    lo, hi = bands["lower_90"].reshape(3, 64), bands["upper_90"].reshape(3, 64)
    # bands of Bernoulli draws: within the support, equal to the data where observed
    assert (lo <= hi).all() and (lo >= 0).all() and (hi <= 1).all()
    np.testing.assert_allclose(lo[:, :32], x[:, :32], rtol=1e-6)
    assert (bands["lower_90"] <= bands["lower_50"]).all()
    assert (
        bands["mask"].reshape(3, 64)[:, :32].all()
        and not bands["mask"].reshape(3, 64)[:, 32:].any()
    )
    assert_png(out_dir / names.COMPLETION_FIGURE)
    data = ax.from_netcdf(out_dir / names.COMPLETION_NC)
    assert {"posterior", "posterior_predictive", "observed_data"} <= set(ax.group_names(data))
    if method == "nuts":
        assert summary["diagnostics"]["divergences"] == [0, 0, 0] or all(
            isinstance(d, int) for d in summary["diagnostics"]["divergences"]
        )
        assert summary["diagnostics"]["summary"]["max_rhat"] is None  # one chain: no R-hat


def test_default_folder_and_mask_file(capsys, run_copy, partial_digits, tmp_path):
    path, x = partial_digits
    mask = np.ones((3, 64), dtype=np.int64)
    mask[:, :16] = 0  # the top quarter missing too
    mask_path = tmp_path / "mask.npy"
    np.save(mask_path, mask)
    status, out, err = _complete(
        capsys, run_copy, "--data", path, "--mask", mask_path, "--draws", "5"
    )
    assert status == 0, err
    summary = json.loads(out)
    assert summary["missing_entries"] == 3 * 48
    assert (run_copy / names.COMPLETION_DIR / names.COMPLETION_NC).is_file()


def test_table(capsys, tmp_path, strict_json, assert_png):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(200, 2))
    x = z @ rng.normal(size=(2, 4)) + 0.1 * rng.normal(size=(200, 4))
    data = tmp_path / "table.csv"
    np.savetxt(data, x, delimiter=",", header="a,b,c,d", comments="")
    run = tmp_path / "run"
    argv = ["train", "--data", data, "--epochs", "1", "--hidden", "8", "--latent-dim", "2"]
    assert main([*map(str, argv), "--scale", "standardize", "--no-progress", "-o", str(run)]) == 0
    part = x[:2].copy()
    part[0, 1] = part[1, 3] = np.nan
    partial = tmp_path / "partial.csv"
    np.savetxt(partial, part, delimiter=",", header="a,b,c,d", comments="")
    status, out, err = _complete(capsys, run, "--data", partial, "--method", "svi", "--steps", "3")
    assert status == 0, err
    folder = run / names.COMPLETION_DIR
    lines = (folder / names.COMPLETION_TABLE).read_text().splitlines()
    assert lines[0] == "row,feature,mean,lower_50,upper_50,lower_90,upper_90"
    assert [ln.split(",")[:2] for ln in lines[1:]] == [["0", "b"], ["1", "d"]]
    mean = np.load(folder / names.COMPLETION_MEAN)
    np.testing.assert_allclose(mean[0, [0, 2, 3]], x[0, [0, 2, 3]], rtol=1e-5)  # data units
    assert_png(folder / names.COMPLETION_FIGURE)
    strict_json(out)


def _random_walk_run(tmp_path, rows: int, reference: int, seed: int):
    """``rows`` random walks of 6 steps (smooth rows: a discrepancy's use), a run trained
    on the first 120 (Gaussian likelihood, standardized), the next ``reference`` saved as
    ROWS: (rows, run folder, ROWS path)."""
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.normal(size=(rows, 6)), 1) + 5.0
    data = tmp_path / "table.npy"
    np.save(data, x[:120])
    ref = tmp_path / "reference.npy"
    np.save(ref, x[120 : 120 + reference])
    run = tmp_path / "run"
    argv = ["train", "--data", data, "--epochs", "2", "--hidden", "8", "--latent-dim", "2"]
    argv += ["--likelihood", "gaussian", "--scale", "standardize", "--no-progress", "-o", run]
    assert main([*map(str, argv)]) == 0
    return x, run, ref


def test_table_with_a_discrepancy(capsys, tmp_path, strict_json):
    """``--discrepancy ROWS`` (reference rows in data units) with an inferred scale: the
    summary records the chosen nugget, observed entries stay the data, the z posterior
    in completion.nc carries the scale."""
    x, run, ref = _random_walk_run(tmp_path, 160, 30, seed=1)
    part = x[150:152].copy()
    part[:, 3:] = np.nan
    partial = tmp_path / "partial.npy"
    np.save(partial, part)
    status, out, err = _complete(
        capsys,
        run,
        "--data",
        partial,
        "--method",
        "nuts",
        "--warmup",
        "10",
        "--chains",
        "1",
        "--draws",
        "10",
        "--discrepancy",
        ref,
        "--discrepancy-scale",
        "infer",
    )
    assert status == 0, err
    summary = strict_json(out)
    assert summary["discrepancy"]["nugget"] > 0 and summary["discrepancy"]["scale"] == "infer"
    folder = run / names.COMPLETION_DIR
    mean = np.load(folder / names.COMPLETION_MEAN)
    np.testing.assert_allclose(mean[:, :3], part[:, :3], rtol=1e-5)
    assert np.isfinite(mean).all()
    idata = ax.from_netcdf(folder / names.COMPLETION_NC)
    assert "discrepancy_scale" in ax.group(idata, "posterior")


def test_table_with_a_calibrated_discrepancy(capsys, tmp_path, strict_json):
    """``--discrepancy-scale calibrated``: each row's pattern gets the scale that a
    held-out fifth of ROWS calibrates (the one the Python API gives), recorded in the
    summary; observed entries stay the data."""
    x, run, ref = _random_walk_run(tmp_path, 200, 70, seed=2)
    part = x[190:193].copy()
    part[0, 3:] = np.nan
    part[1:, :2] = np.nan
    partial = tmp_path / "partial.npy"
    np.save(partial, part)
    args = ["--data", partial, "--method", "svi", "--steps", "3", "--draws", "20"]
    args += ["--discrepancy", ref]
    status, out, err = _complete(capsys, run, *args, "--discrepancy-scale", "calibrated")
    assert status == 0, err
    summary = strict_json(out)["discrepancy"]
    assert summary["scale"] == "calibrated"
    est = load_run(run)
    scaler = Scaler.from_state(est.data_info_["scaler"])
    rows = scaler.transform(torch.as_tensor(x[120:190], dtype=torch.float32))
    noise = est.discrepancy(rows, calibrate=True)
    mask = ~np.isnan(part)
    want = [noise.pattern_scale(torch.as_tensor(m)) for m in mask]
    np.testing.assert_allclose(summary["pattern_scales"], want, rtol=1e-9)
    assert want[1] == want[2] and want[0] != pytest.approx(want[1])
    mean = np.load(run / names.COMPLETION_DIR / names.COMPLETION_MEAN)
    np.testing.assert_allclose(mean[mask], part[mask], rtol=1e-5)


@pytest.mark.parametrize(
    "case, message",
    [
        ("nugget", "--nugget must be a number > 0 or auto; got '0'"),
        ("scale alone", "--discrepancy-scale and --nugget need --discrepancy ROWS"),
        ("reference features", "ROWS of --discrepancy have 60 features per row"),
        ("infer with svi", "method 'svi' cannot sample the discrepancy's scale"),
        ("mask shape", "the mask has shape (3, 60) but PARTIAL has (3, 64)"),
        ("empty row", "PARTIAL has 1 row(s) with no observed entry, first row 1"),
        ("features", "PARTIAL has 60 features per row; the run's model has 64"),
        ("option", "--chains is an option of --method nuts, not svi"),
        ("method", "unknown conditioner"),
    ],
)
def test_errors_are_one_line_and_write_nothing(
    capsys, digits_run, partial_digits, tmp_path, case, message
):
    path, x = partial_digits
    argv = [digits_run, "--data", path, "-o", tmp_path / "out", "--draws", "5"]
    if case == "mask shape":
        np.save(tmp_path / "mask.npy", np.ones((3, 60)))
        argv += ["--mask", tmp_path / "mask.npy"]
    elif case == "empty row":
        part = x.copy()
        part[1] = np.nan
        np.save(tmp_path / "p.npy", part)
        argv[2] = tmp_path / "p.npy"
    elif case == "features":
        np.save(tmp_path / "p.npy", x[:, :60])
        argv[2] = tmp_path / "p.npy"
    elif case == "option":
        argv += ["--method", "svi", "--chains", "2"]
    elif case == "nugget":
        np.save(tmp_path / "ref.npy", x)
        argv += ["--discrepancy", tmp_path / "ref.npy", "--nugget", "0"]
    elif case == "scale alone":
        argv += ["--discrepancy-scale", "infer"]
    elif case == "reference features":
        np.save(tmp_path / "ref.npy", x[:, :60])
        argv += ["--discrepancy", tmp_path / "ref.npy"]
    elif case == "infer with svi":
        np.save(tmp_path / "ref.npy", load_data("digits").test[:20].reshape(20, 64).numpy())
        argv += ["--discrepancy", tmp_path / "ref.npy", "--discrepancy-scale", "infer"]
        argv += ["--method", "svi", "--steps", "2"]
    else:
        argv += ["--method", "gibbs"]
    status, out, err = _complete(capsys, *argv)
    assert status == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "out").exists()
    assert not (digits_run / names.COMPLETION_DIR).exists()
