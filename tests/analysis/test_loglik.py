"""Importance-sampled log p(x) against the closed form of probabilistic PCA.

p(z) = N(0, I), p(x|z) = N(W z + b, s^2 I)  =>  p(x) = N(b, W W^T + s^2 I) and
p(z|x) = N(S W^T (x - b) / s^2, S), S = (I + W^T W / s^2)^{-1} (Tipping & Bishop 1999).
With the exact posterior as proposal every importance weight equals p(x), so the
estimate is exact for any K; with a mismatched (diagonal, widened) proposal it
converges as K grows. Tolerances are stated in each test.
"""

from __future__ import annotations

import math

import pytest
import torch

from pyrovae.analysis import elbo_decomposition, log_likelihood
from pyrovae.errors import ConfigError

D, L, S = 5, 2, 0.5


@pytest.fixture
def PPCA(ppca_class):  # noqa: N802 - a class
    return ppca_class


def _data(PPCA, n=40):  # noqa: N803
    return PPCA(True).marginal().sample((n,))


def test_exact_posterior_gives_exact_log_likelihood(PPCA):  # noqa: N803
    m = PPCA(exact=True)
    x = _data(PPCA)
    est = log_likelihood(m, x, samples=7)
    torch.testing.assert_close(est, m.marginal().log_prob(x), rtol=0, atol=1e-4)


def test_mismatched_proposal_converges_with_chunking(PPCA):  # noqa: N803
    """K = 5000 in chunks of at most 64: mean error below 0.01 nats, each point below 0.05."""
    m = PPCA(exact=False)
    x = _data(PPCA)
    truth = m.marginal().log_prob(x)
    est = log_likelihood(m, x, samples=5000, memory=64 * 4 * 6 * (D + 4 * L) * x.shape[0])
    assert (est - truth).abs().max() < 0.05
    assert (est - truth).mean().abs() < 0.01
    few = log_likelihood(m, x, samples=1)  # the ELBO: a lower bound, visibly lower
    assert (truth - few).mean() > 0.05


def test_decomposition_gap_and_bits_per_dim(PPCA):  # noqa: N803
    m = PPCA(exact=True)
    x = _data(PPCA, 200)
    out = elbo_decomposition(m, x, samples=50, particles=50)
    truth = m.marginal().log_prob(x).mean().item()
    assert out["log_likelihood"] == pytest.approx(truth, abs=1e-3)
    assert out["bits_per_dim"] == pytest.approx(-truth / (D * math.log(2)), rel=1e-6)
    # with the exact posterior the ELBO equals log p(x): the gap is Monte Carlo noise only
    assert abs(out["gap"]) < 4 * out["elbo_se"] + 0.05
    assert out["active_units"] == L and out["kl_per_dim"] is None  # full-covariance guide
    assert 0 < out["mutual_info"] <= math.log(200)


def test_autoencoders_have_no_marginal_likelihood():
    from pyrovae.models import ModuleSpec, build_module

    ae = build_module("ae", ModuleSpec(data_shape=(4,), latent_dim=2, hidden=(8,)))
    with pytest.raises(ConfigError, match="latent variables"):
        log_likelihood(ae, torch.rand(3, 4))


def test_evaluate_with_samples_from_cli_and_api(small_digits, tmp_path, capsys):
    import json

    from pyrovae.api import VAE
    from pyrovae.cli import main

    x, xv = small_digits
    vae = VAE(epochs=2, hidden=(32,), latent_dim=3).fit(x, X_val=xv)
    ll = vae.log_likelihood(xv[:20], samples=200)
    elbo = vae.elbo(xv[:20], particles=50)
    assert ll.shape == (20,) and (ll > elbo - 0.5).all()  # a tighter bound than the ELBO
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--epochs",
                "2",
                "--hidden",
                "32",
                "--latent-dim",
                "3",
                "--no-progress",
                "-o",
                str(run),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["evaluate", str(run), "--samples", "100"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["samples"] == 100 and out["log_likelihood"] >= out["elbo"] - 0.5
    assert len(out["kl_per_dim"]) == 3 and 0 <= out["active_units"] <= 3
    assert out["bits_per_dim"] == pytest.approx(-out["log_likelihood"] / (64 * math.log(2)))
    assert json.loads((run / "evaluation.json").read_text())["samples"] == 100
