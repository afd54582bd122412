"""Importance-sampled log p(x) against the closed form of probabilistic PCA.

p(z) = N(0, I), p(x|z) = N(W z + b, s^2 I)  =>  p(x) = N(b, W W^T + s^2 I) and
p(z|x) = N(S W^T (x - b) / s^2, S), S = (I + W^T W / s^2)^{-1} (Tipping & Bishop 1999).
With the exact posterior as proposal every importance weight equals p(x), so the
estimate is exact for any K; with a mismatched (diagonal, widened) proposal it
converges as K grows. Tolerances are stated in each test.

I(x; z) of pPCA with the exact posterior is -1/2 log det S (z ~ N(0, I)); the
aggregate-posterior estimator over N points is an InfoNCE bound (van den Oord et al.
2018; Poole et al. 2019): in expectation it lies below I(x; z) by at most
log(1 + chi^2 / N) (Jensen), where 1 + chi^2 = E_p(x,z)[p(z|x) / p(z)] = exp(2 I)
for jointly Gaussian (x, z).
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


@pytest.mark.parametrize("direct", [True, False])
def test_exact_posterior_gives_exact_log_likelihood(PPCA, direct):  # noqa: N803
    """Both ways of computing the log-weights: from the distributions and from traces."""
    m = PPCA(exact=True)
    x = _data(PPCA)
    est = log_likelihood(m, x, samples=7, direct=direct)
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


def _closed_form_mi(m) -> float:
    """I(x; z) = -1/2 log det S of pPCA (prior N(0, I), posterior covariance S)."""
    return float(-0.5 * torch.logdet(m.cov_post))


def _mi_bounds(m, x, seed: int) -> tuple[float, float]:
    """Where the aggregate-posterior estimate on ``x`` must fall: from I(x; z) -
    log(1 + chi^2 / N) - 4 se to I(x; z) + 4 se, se the standard error of the per-point
    terms log p(z_n|x_n) - log p(z_n), z_n ~ p(z|x_n) drawn after seeding with ``seed``
    (the estimator's own draws when it is called after the same seeding)."""
    torch.manual_seed(seed)
    q = m.encode(x)
    z = q.sample()  # the draws the estimator makes after the same reseeding
    terms = q.log_prob(z) - m.prior_distribution().log_prob(z)
    se = float(terms.detach().std() / math.sqrt(x.shape[0]))
    mi = _closed_form_mi(m)
    bias = math.log1p(math.expm1(2 * mi) / x.shape[0])
    return mi - bias - 4 * se, mi + 4 * se


def test_decomposition_gap_and_bits_per_dim(PPCA):  # noqa: N803
    m = PPCA(exact=True)
    x = _data(PPCA, 200)
    out = elbo_decomposition(m, x, samples=50, particles=50)
    truth = m.marginal().log_prob(x).mean().item()
    assert out["log_likelihood"] == pytest.approx(truth, abs=1e-3)
    assert out["bits_per_dim"] == pytest.approx(-truth / (D * math.log(2)), rel=1e-6)
    # with the exact posterior every ELBO term log p(x, z) - log q(z|x) equals log p(x),
    # as does every importance weight: ELBO and log p(x) agree to float rounding
    assert out["elbo"] == pytest.approx(truth, abs=1e-4)
    assert abs(out["gap"]) < 1e-5
    assert out["active_units"] == L and out["kl_per_dim"] is None  # full-covariance guide
    assert out["activity"] == pytest.approx(_activity(m, x).tolist(), rel=1e-5)


def _activity(m, x) -> torch.Tensor:
    """Var_x(E[z|x]) over the rows of ``x``: E[z|x] = M (x - b), M = S W^T / s^2."""
    post_mean = (x - m.b) @ (m.cov_post @ m.W.T / S**2).T
    return post_mean.var(0)


def test_active_units_of_a_latent_the_decoder_ignores(PPCA):  # noqa: N803
    """With W's second column zero, z_2 does not affect x: E[z_2|x] = 0 for every x, so
    its activity is 0 and one unit is active; z_1's activity is the sample variance of
    E[z_1|x], whose expectation is (M C M^T)_11 with C = W W^T + s^2 I, within four of
    its standard errors sqrt(2 / (N - 1)) times that (Gaussian data)."""
    w = PPCA(exact=True).W.clone()
    w[:, 1] = 0.0
    m = PPCA(exact=True, w=w)
    n = 300
    x = m.marginal().sample((n,))
    out = elbo_decomposition(m, x, particles=2)
    assert out["active_units"] == 1
    assert out["activity"][1] == 0.0
    big_m = m.cov_post @ m.W.T / S**2
    expected = float((big_m @ m.marginal().covariance_matrix @ big_m.T)[0, 0])
    assert abs(out["activity"][0] - expected) < 4 * expected * math.sqrt(2 / (n - 1))
    assert out["activity"][0] > 0.01


def test_mutual_information_against_the_closed_form(PPCA):  # noqa: N803
    from pyrovae.inference.loglik import mutual_information

    m = PPCA(exact=True, w=0.3 * PPCA(exact=True).W)  # I(x; z) about 1.1 nats: the
    # InfoNCE bias bound is below 0.01
    x = m.marginal().sample((2000,))
    lo, hi = _mi_bounds(m, x, seed=5)
    torch.manual_seed(5)
    estimate = mutual_information(m, x)
    assert lo < estimate < hi
    # a decoder that ignores z: q(z|x) is the prior for every x and the estimate is 0
    m = PPCA(exact=True, w=torch.zeros(D, L))
    assert _closed_form_mi(m) == 0.0
    assert mutual_information(m, x) == pytest.approx(0.0, abs=1e-6)


def test_decomposition_mutual_information_is_the_estimator(PPCA):  # noqa: N803
    """In the decomposition (full W, I(x; z) about 3.1 nats, 200 points): within the
    InfoNCE bounds of the closed form."""
    m = PPCA(exact=True)
    x = _data(PPCA, 200)
    lo, hi = _mi_bounds(m, x, seed=9)
    out = elbo_decomposition(m, x, particles=2)
    assert lo < out["mutual_info"] < hi


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
    assert ll.shape == (20,) and elbo.shape == (20,)
    # a tighter bound than the ELBO: the mean paired difference exceeds four of its
    # standard errors
    diff = ll - elbo
    assert diff.mean() > 4 * diff.std() / math.sqrt(20)
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
    assert out["samples"] == 100 and out["particles"] == 10
    assert out["gap"] == pytest.approx(out["log_likelihood"] - out["elbo"], abs=1e-5)
    assert out["bits_per_dim"] == pytest.approx(-out["log_likelihood"] / (64 * math.log(2)))
    assert json.loads((run / "evaluation.json").read_text())["samples"] == 100
    # the same quantities from the API, with other draws, on the run's test split
    from pyrovae.api import load
    from pyrovae.data import load_data

    est, x_test = load(run), load_data("digits").test
    assert out["n"] == x_test.shape[0]
    diff = est.log_likelihood(x_test, samples=100) - est.elbo(x_test, particles=10)
    se = float(diff.std() / math.sqrt(diff.numel()))  # of the mean paired difference
    assert abs(out["gap"] - float(diff.mean())) < 4 * math.sqrt(2) * se  # two estimates
    assert out["gap"] > 4 * se  # a tighter bound than the ELBO
    activity = est.encode(x_test).mean.var(0)  # deterministic: the same numbers
    assert out["activity"] == pytest.approx(activity.tolist(), rel=1e-5)
    assert len(out["kl_per_dim"]) == 3
    assert out["active_units"] == int((activity > 0.01).sum())
