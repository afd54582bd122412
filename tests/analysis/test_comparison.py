"""The comparison metrics on inputs whose answer is known, and `pyrovae compare`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from pyrovae.analysis.comparison import (
    auroc,
    check_same_data,
    compare_runs,
    label_entropy,
    mmd_rbf,
    nn_distances,
    path_smoothness,
    unique_labels,
)
from pyrovae.cli import main
from pyrovae.errors import ConfigError, DataError

# -- metrics on constructed inputs -------------------------------------------------------


def test_nn_distance_is_zero_for_training_points_and_exact_otherwise():
    g = torch.Generator().manual_seed(0)
    train = torch.rand(50, 1, 4, 4, generator=g)
    assert float(nn_distances(train[:10], train).abs().max()) == 0.0
    # points on a line: the nearest of {0, 10} to 3 and to 8 is 3 and 2 away
    b = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    d = nn_distances(torch.tensor([[3.0, 0.0], [8.0, 0.0], [0.0, 4.0]]), b, chunk=2)
    assert d.tolist() == pytest.approx([3.0, 2.0, 4.0])


def test_mmd_is_near_zero_for_one_distribution_and_positive_for_a_shift():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(400, 2, generator=g), torch.randn(400, 2, generator=g)
    same = mmd_rbf(x, y)
    shifted = mmd_rbf(x, y + 1.0)
    assert abs(same) < 0.01
    assert shifted > 0.15
    assert mmd_rbf(y + 1.0, x) == pytest.approx(shifted, rel=1e-9)  # symmetric
    # a closed form: one point each, bandwidth h: MMD^2 is not defined (n < 2) ...
    with pytest.raises(DataError, match="^MMD needs at least two rows in each sample$"):
        mmd_rbf(x[:1], y)
    # ... two far-apart clusters with a tiny bandwidth: k = identity, MMD^2 = 2 / (n - 1) * ...
    a = torch.zeros(3, 1) + torch.tensor([[0.0], [100.0], [200.0]])
    assert mmd_rbf(a, a + 50.0, bandwidth=1e-3) == pytest.approx(0.0, abs=1e-12)


def test_path_smoothness_is_one_for_a_linear_decoder():
    g = torch.Generator().manual_seed(0)
    w, b = torch.randn(3, 20, generator=g), torch.randn(20, generator=g)
    za, zb = torch.randn(8, 3, generator=g), torch.randn(8, 3, generator=g)
    out = path_smoothness(lambda z: z @ w + b, za, zb, steps=11)
    assert out["ratio"] == pytest.approx(1.0, abs=1e-6)
    assert out["max_step"] == pytest.approx(0.1, abs=1e-6)  # 10 equal steps
    assert out["pairs"] == 8


def test_path_smoothness_detects_curved_and_jumping_decoders():
    g = torch.Generator().manual_seed(1)
    za, zb = torch.randn(8, 2, generator=g), torch.randn(8, 2, generator=g)
    curved = path_smoothness(lambda z: torch.sin(4 * z), za, zb, steps=50)
    assert curved["ratio"] > 1.3
    # a step function: the whole path is one jump
    jump = path_smoothness(lambda z: (z > 0).float(), -torch.ones(4, 2), torch.ones(4, 2))
    assert jump["ratio"] == pytest.approx(1.0) and jump["max_step"] == pytest.approx(1.0)
    # identical endpoints are left out
    same = path_smoothness(lambda z: z, torch.zeros(3, 2), torch.zeros(3, 2))
    assert same["pairs"] == 0 and math.isnan(same["ratio"])


def test_label_entropy_and_auroc():
    assert label_entropy(np.arange(10)) == pytest.approx(math.log(10))
    assert label_entropy(np.array([3, 3, 7, 7])) == pytest.approx(math.log(2))
    assert label_entropy(np.zeros(7, int)) == 0.0
    assert auroc([0.0, 0.1, 0.2], [1.0, 2.0]) == 1.0
    assert auroc([1.0, 2.0], [0.0, 0.1]) == 0.0
    rng = np.random.default_rng(0)
    assert abs(auroc(rng.normal(size=2000), rng.normal(size=2000)) - 0.5) < 0.03


def test_check_same_data_and_labels():
    info = {"data": "digits", "split_seed": 0, "val_fraction": 0.1, "test_fraction": 0.1}
    check_same_data([("a", info), ("b", dict(info))])
    with pytest.raises(ConfigError, match="different data: a has data = 'digits' but b"):
        check_same_data([("a", info), ("b", {**info, "data": "shapes"})])
    with pytest.raises(ConfigError, match="split_seed"):
        check_same_data([("a", info), ("b", {**info, "split_seed": 1})])
    with pytest.raises(ConfigError, match="does not record"):
        check_same_data([("a", {})])
    # column options: a run that predates one (no key) equals an empty one
    check_same_data([("a", info), ("b", {**info, "drop_columns": [], "label_column": None})])
    with pytest.raises(ConfigError, match=r"a has drop_columns = None but b has \['id'\]"):
        check_same_data([("a", info), ("b", {**info, "drop_columns": ["id"]})])
    with pytest.raises(ConfigError, match="label_column"):
        check_same_data([("a", info), ("b", {**info, "label_column": "target"})])
    assert unique_labels(["vae β=1", "vae β=1", "ae"], ["r/x", "r/y", "r/z"]) == [
        "vae β=1 (x)",
        "vae β=1 (y)",
        "ae",
    ]


# -- whole comparisons ---------------------------------------------------------------------


def test_compare_runs_on_shapes_reports_disentanglement():
    from pyrovae.api import AE
    from pyrovae.data import load_data

    data = load_data("shapes")
    ae = AE(latent_dim=4, hidden=(32,), epochs=1, patience=0).fit(data.train)
    res = compare_runs([ae], data, n=60, samples=5, n_samples=60, pairs=10, classifier="logistic")
    row = res["rows"][0]
    assert row["label"] == "ae" and row["rate"] is None and row["log_likelihood"] is None
    # the scores of the autoencoder's codes (deterministic) on the shapes grid, and the
    # beta-VAE score with the comparison's seed: the values tests/analysis/
    # test_disentanglement.py checks on known cases
    from pyrovae.analysis.disentanglement import beta_vae_score, mig
    from pyrovae.data.shapes import factor_generator

    gen = factor_generator("shapes")
    images, factors = gen.grid()
    expected = mig(ae.encode(images).mean, factors)
    assert row["mig"] == expected["mig"]
    assert row["disentanglement"]["mig_per_factor"] == expected["per_factor"]
    beta_vae = beta_vae_score(lambda im: ae.encode(im).mean, gen, seed=0)
    assert row["beta_vae_score"] == beta_vae["accuracy"]
    assert len(row["disentanglement"]["mig_per_factor"]) == 4
    assert set(row["ood_auroc"]) == {"noise", "inverted", "other"}
    assert res["reference"]["other_dataset"] == "digits"
    # the classifier predicts the first factor (shape): 3 classes
    assert res["reference"]["max_label_entropy"] == pytest.approx(math.log(3))
    assert res["settings"]["classifier"] == "logistic"
    # the share of reconstructions the (seeded, deterministic) classifier labels right
    from pyrovae.analysis.comparison import make_reference

    torch.manual_seed(0)
    ref = make_reference(data, n=60, n_samples=60, seed=0, classifier="logistic")
    pred = ref.classifier.predict(ae.reconstruct(ref.x_test).flatten(1).numpy())
    assert row["recon_accuracy"] == float((pred == ref.y_test).mean())
    assert res["reference"]["classifier_test_accuracy"] == float(
        (ref.classifier.predict(ref.x_test.flatten(1).numpy()) == ref.y_test).mean()
    )


def _train(run, *extra):
    args = ["train", "--epochs", "2", "--hidden", "32", "--latent-dim", "2", "--no-progress"]
    assert main([*args, "-o", str(run), *extra]) == 0


def test_cli_compare_writes_tables_and_figures(tmp_path, capsys):
    _train(tmp_path / "ae", "--model", "ae")
    _train(tmp_path / "vae", "--beta", "4")
    capsys.readouterr()
    out = tmp_path / "cmp"
    args = ["compare", str(tmp_path / "ae"), str(tmp_path / "vae"), "--output", str(out)]
    assert main([*args, "--n", "60", "--samples", "10"]) == 0
    printed = capsys.readouterr().out
    for name in ("comparison.json", "comparison.md", "rate_distortion.png", "grids.png"):
        assert (out / name).stat().st_size > 0, name
    result = json.loads((out / "comparison.json").read_text())
    assert [r["label"] for r in result["rows"]] == ["ae", "vae β=4"]
    ae, vae = result["rows"]
    assert ae["log_likelihood"] is None and ae["rate"] is None
    assert vae["log_likelihood"] < 0 and vae["rate"] >= 0
    assert vae["distortion"] == pytest.approx(-vae["recon_loglik"])
    assert result["settings"]["n"] == 60 and result["data"] == "digits"
    md = (out / "comparison.md").read_text()
    assert md in printed
    tables = [block for block in md.split("### ")[1:]]
    assert len(tables) == 3
    for block in tables:
        rows = [ln for ln in block.splitlines() if ln.startswith("| ") and "---" not in ln]
        assert [r.split("|")[1].strip() for r in rows] == ["run", "ae", "vae β=4"]


def test_cli_compare_refuses_runs_on_different_data(tmp_path, capsys):
    _train(tmp_path / "digits", "--model", "ae", "--epochs", "1")
    _train(tmp_path / "shapes", "--model", "ae", "--epochs", "1", "--data", "shapes")
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "digits"), str(tmp_path / "shapes")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("pyrovae: error: runs were trained on different data")
    assert main(["compare", str(tmp_path / "digits"), "--n", "0"]) == 2
