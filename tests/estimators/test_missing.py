"""Training with missing entries (--missing mask, --mask-rate) through the Python API and
the command line, evaluation and conditioning of the fitted model, and the bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pyrovae import VAE, load
from pyrovae.cli import main
from pyrovae.errors import ConfigError, DataError

TINY = dict(epochs=2, hidden=(32,), latent_dim=2, batch_size=64)


def _digits_with_holes(digits_x, rate=0.3, seed=0):
    x = np.asarray(digits_x, dtype=np.float64)[:400].reshape(400, -1)
    holes = np.random.default_rng(seed).random(x.shape) < rate
    holes[:, 0] &= ~holes.all(1)  # every row observed somewhere
    out = x.copy()
    out[holes] = np.nan
    return out, holes


@pytest.fixture(scope="module")
def holes_x(digits):
    x = digits.train if hasattr(digits, "train") else digits
    return _digits_with_holes(x)


def test_nan_is_refused_by_default_with_a_hint(holes_x):
    x, _ = holes_x
    with pytest.raises(DataError, match="--missing mask") as info:
        VAE(**TINY).fit(x)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("family", ["vae", "hvae"])
def test_python_training_on_30_percent_missing_digits(holes_x, family, tmp_path):
    from pyrovae.estimators import ESTIMATORS

    x, holes = holes_x
    est = ESTIMATORS.get(family)(
        **TINY, missing="mask", mask_rate=0.2, likelihood="continuous-bernoulli"
    ).fit(x[:300], X_val=x[300:], run_dir=tmp_path / "run")
    assert est.module_.mask_input
    for row in est.history_:
        assert np.isfinite(row["train_loss"]) and np.isfinite(row["val_loss"])
    ev = est.evaluate(x[300:])
    assert np.isfinite(ev["elbo"])
    ll = est.log_likelihood(x[300:320], samples=50)  # log p(x_obs) of each row
    assert torch.isfinite(ll).all() and est.elbo(x[300:320]).shape == (20,)
    # the run reloads with its mask-reading encoder and conditions without a warning
    back = load(tmp_path / "run")
    assert back.missing == "mask" and back.module_.mask_input
    out = back.condition(x[300:310], draws=20, x_true=np.nan_to_num(x[300:310]))
    assert out.x.shape == (20, 10, x.shape[1]) and torch.isfinite(out.mean).all()
    assert torch.equal(out.mask.cpu(), torch.as_tensor(~holes[300:310]))


def test_mask_rate_alone_trains_a_mask_reading_encoder(holes_x):
    x, _ = holes_x
    full = np.nan_to_num(x)
    est = VAE(**TINY, mask_rate=0.5, likelihood="continuous-bernoulli").fit(full[:200])
    assert est.module_.mask_input and est.missing == "refuse"


def test_mask_rate_draws_from_the_trainer_generator():
    from pyrovae.data import Batch
    from pyrovae.training import Trainer

    class _T:  # the one method, on a stand-in trainer
        drop_entries = Trainer.drop_entries

    def draw(seed):
        t = _T()
        t.generator = torch.Generator().manual_seed(seed)
        t.options = type("O", (), {"mask_rate": 0.3})()
        return t.drop_entries(Batch(torch.zeros(50, 40), mask=None)).mask

    a, b = draw(1), draw(1)
    assert torch.equal(a, b) and not torch.equal(a, draw(2))
    # 2000 Bernoulli(0.7) keeps: within 5 binomial standard errors of 0.7
    assert abs(float(a.float().mean()) - 0.7) < 5 * (0.21 / 2000) ** 0.5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"missing": "drop"}, "missing must be one of refuse, mask"),
        ({"mask_rate": 1.0}, r"mask_rate must be in \[0, 1\)"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        VAE(**TINY, **kwargs).fit(np.random.default_rng(0).random((20, 4)))


def test_a_row_with_no_observed_entry_is_refused():
    x = np.random.default_rng(0).random((20, 4))
    x[5] = np.nan
    with pytest.raises(DataError, match="1 row.* with no observed entry, first row 5"):
        VAE(**TINY, missing="mask").fit(x)


def test_condition_refuses_a_mask_of_another_shape(holes_x):
    x, _ = holes_x
    est = VAE(**TINY, missing="mask", likelihood="continuous-bernoulli").fit(x[:100])
    with pytest.raises(DataError, match=r"mask of x has shape \(3, 5\)"):
        est.condition(x[:3], mask=np.ones((3, 5), bool))
    with pytest.raises(DataError, match="the model expects"):
        est.condition(x[:3, :10])


# -- the command line ----------------------------------------------------------------------


def _csv_with_empty_cells(path: Path, x: np.ndarray) -> Path:
    lines = [",".join("" if np.isnan(v) else f"{v:g}" for v in row) for row in x]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_trains_on_a_csv_with_empty_cells(holes_x, tmp_path, capsys):
    x, _ = holes_x
    data = _csv_with_empty_cells(tmp_path / "holes.csv", x)
    argv = [
        "train",
        "--data",
        str(data),
        "--epochs",
        "2",
        "--hidden",
        "32",
        "--latent-dim",
        "2",
        "--no-progress",
        "-o",
        str(tmp_path / "run"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--missing mask" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()
    argv += ["--missing", "mask", "--mask-rate", "0.1", "--likelihood", "gaussian"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert np.isfinite(summary["val_elbo"])
    assert (tmp_path / "run" / "config.toml").read_text().count('missing = "mask"') == 1
    assert main(["evaluate", str(tmp_path / "run"), "--samples", "0"]) == 0


def test_cli_trains_on_an_npy_with_nan(holes_x, tmp_path, capsys):
    x, _ = holes_x
    np.save(tmp_path / "holes.npy", x)
    argv = [
        "train",
        "--data",
        str(tmp_path / "holes.npy"),
        "--epochs",
        "1",
        "--hidden",
        "16",
        "--latent-dim",
        "2",
        "--no-progress",
        "--missing",
        "mask",
        "--likelihood",
        "continuous-bernoulli",
        "-o",
        str(tmp_path / "run"),
    ]
    assert main(argv) == 0, capsys.readouterr().err


def test_resume_with_mask_rate_is_exact(holes_x, tmp_path):
    from pyrovae import resume

    x, _ = holes_x
    params = dict(TINY, missing="mask", mask_rate=0.3, likelihood="continuous-bernoulli")
    whole = VAE(**{**params, "epochs": 4}).fit(x[:200], X_val=x[200:260], run_dir=tmp_path / "a")
    VAE(**params).fit(x[:200], X_val=x[200:260], run_dir=tmp_path / "b")
    resumed = resume(tmp_path / "b", x[:200], x[200:260], epochs=4)
    got = [r["train_loss"] for r in resumed.history_]
    want = [r["train_loss"] for r in whole.history_]
    assert got == want


def test_cli_refuses_a_row_with_no_observed_entry_and_writes_nothing(tmp_path, capsys):
    x = np.random.default_rng(0).random((40, 4))
    x[3] = np.nan
    data = _csv_with_empty_cells(tmp_path / "holes.csv", x)
    argv = [
        "train",
        "--data",
        str(data),
        "--epochs",
        "1",
        "--no-progress",
        "--missing",
        "mask",
        "--split-seed",
        "0",
        "-o",
        str(tmp_path / "run"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "row(s) with no observed entry" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_set_encoder_trains_reloads_and_conditions(holes_x, tmp_path):
    x, _ = holes_x
    est = VAE(**TINY, missing="mask", mask_encoder="set", likelihood="continuous-bernoulli").fit(
        x[:200], run_dir=tmp_path / "run"
    )
    back = load(tmp_path / "run")
    assert back.mask_encoder == "set" and type(back.module_.encoder).__name__ == "SetMaskEncoder"
    a = est.condition(x[:5], draws=10, seed=1).z
    b = back.condition(x[:5], draws=10, seed=1).z
    for site in a:
        torch.testing.assert_close(a[site], b[site])
    with pytest.raises(Exception, match="mask encoder"):
        VAE(**TINY, missing="mask", mask_encoder="bogus").fit(x[:50])
