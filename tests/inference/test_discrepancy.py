"""The Gaussian model discrepancy against closed forms.

Densities and conditionals against torch's ``MultivariateNormal`` and the precision form
of a Gaussian conditional; the nugget's selection against the direct density; and, on
the probabilistic PCA fixture (z ~ N(0, I), decoder mean W z + b), conditioning with a
discrepancy δ ~ N(0, Σ) against the exact answer: x ~ N(b, W W^T + Σ), so that
x_h | x_o is that Gaussian's conditional and z | x_o has precision
I + W_o^T Σ_oo^-1 W_o and mean Λ^-1 W_o^T Σ_oo^-1 (x_o - b_o).
Tolerances of Monte Carlo checks: 5 standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pyro import poutine

from pyrovae import sites
from pyrovae.data.batch import Batch
from pyrovae.errors import ConfigError, DataError
from pyrovae.inference.conditioning import condition
from pyrovae.inference.discrepancy import GaussianDiscrepancy, select_nugget


def spd(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


def pattern(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(d, generator=g) < 0.5
    mask[0], mask[-1] = True, False
    return mask


@pytest.mark.parametrize("scale", [None, 2.5])
def test_log_prob_of_the_observed_entries_is_the_gaussian_marginal(scale):
    d = 7
    cov, mask = spd(d, 0), pattern(d, 1)
    noise = GaussianDiscrepancy(cov)
    g = torch.Generator().manual_seed(2)
    x, mean = torch.randn(d, generator=g), torch.randn(3, d, generator=g)
    s = None if scale is None else torch.full((3,), scale)
    got = noise.log_prob_observed(x, mean, mask, s)
    factor = 1.0 if scale is None else scale
    o = mask
    want = torch.distributions.MultivariateNormal(
        mean.double()[:, o], factor * cov[o][:, o]
    ).log_prob(x.double()[o])
    torch.testing.assert_close(got, want)


def test_conditional_is_the_precision_form():
    d = 8
    cov, mask = spd(d, 3), pattern(d, 4)
    noise = GaussianDiscrepancy(cov)
    g = torch.Generator().manual_seed(5)
    x, mean = torch.randn(d, generator=g), torch.randn(2, d, generator=g)
    mu, chol = noise.conditional(x, mean, mask)
    prec = torch.linalg.inv(cov)
    h, o = ~mask, mask
    c = torch.linalg.inv(prec[h][:, h])
    want = mean.double()[:, h] - (x.double()[o] - mean.double()[:, o]) @ (c @ prec[h][:, o]).T
    torch.testing.assert_close(mu, want)
    torch.testing.assert_close(chol @ chol.T, c)


def test_completion_draws_have_the_conditional_moments():
    d, n = 6, 40000
    cov, mask = spd(d, 6), pattern(d, 7)
    noise = GaussianDiscrepancy(cov)
    x = torch.randn(1, d, generator=torch.Generator().manual_seed(8))
    mean = torch.zeros(n, 1, d)  # one decoder mean: draws vary by the conditional only
    torch.manual_seed(0)
    draws, average = noise.complete(x, mask[None], mean)
    mu, chol = noise.conditional(x[0], mean[:1, 0], mask)
    h = ~mask
    assert torch.equal(draws[:, 0, mask], x[0, mask].expand(n, -1))
    torch.testing.assert_close(average[0, h].double(), mu[0], atol=1e-6, rtol=0)
    got = draws[:, 0, h].double()
    sd = chol.square().sum(1).sqrt()
    assert ((got.mean(0) - mu[0]).abs() <= 5 * sd / math.sqrt(n)).all()
    emp = torch.cov(got.T)
    want = chol @ chol.T
    # sd of a sample covariance entry: sqrt((c_ij^2 + c_ii c_jj) / n)
    se = ((want.square() + want.diagonal()[:, None] * want.diagonal()[None]) / n).sqrt()
    assert ((emp - want).abs() <= 5 * se).all()


def test_conditional_log_likelihood_is_exact_for_one_draw():
    d = 6
    cov, mask = spd(d, 9), pattern(d, 10)
    noise = GaussianDiscrepancy(cov)
    g = torch.Generator().manual_seed(11)
    x, m = torch.randn(1, d, generator=g), torch.randn(d, generator=g)
    mean = m.expand(5, 1, d)  # five identical draws
    got, se = noise.log_lik_missing(x, mask[None], mean, torch.full((5, 1), 2.0))
    mu, chol = noise.conditional(x[0], m[None], mask)
    want = torch.distributions.MultivariateNormal(mu[0], 2.0 * chol @ chol.T).log_prob(
        x[0, ~mask].double()
    )
    torch.testing.assert_close(got[0], want)
    assert float(se[0]) == 0.0
    full = torch.ones_like(mask)
    zero, _ = noise.log_lik_missing(x, full[None], mean)
    assert float(zero[0]) == 0.0


def test_nugget_selection_matches_the_direct_density():
    g = torch.Generator().manual_seed(12)
    d = 9
    train = torch.randn(4, d, generator=g, dtype=torch.float64)  # rank-deficient S
    val = torch.randn(6, d, generator=g, dtype=torch.float64)
    s = torch.cov(train.T)
    grid = [10.0 ** (-k / 4) for k in range(16, -1, -1)]
    rel, ll = select_nugget(s, val, grid)
    level = float(s.diagonal().mean())
    direct = [
        float(
            torch.distributions.MultivariateNormal(
                torch.zeros(d, dtype=torch.float64), s + r * level * torch.eye(d)
            )
            .log_prob(val)
            .mean()
        )
        for r in grid
    ]
    assert rel == grid[int(np.argmax(direct))]
    assert ll == pytest.approx(max(direct), rel=1e-7)


def test_nugget_recovers_the_level_outside_the_span_of_the_residuals():
    """Rows = a rank-2 signal + white noise of variance v, fewer rows than entries: the
    selected ε is v up to sampling error and the grid's 0.1-decade steps."""
    g = torch.Generator().manual_seed(13)
    d, v = 60, 1e-4
    basis = torch.randn(d, 2, generator=g, dtype=torch.float64)

    def rows(n):
        a = torch.randn(n, 2, generator=g, dtype=torch.float64)
        return a @ basis.T + math.sqrt(v) * torch.randn(n, d, generator=g, dtype=torch.float64)

    noise = GaussianDiscrepancy.from_residuals(rows(20), validation=rows(200))
    assert v / 1.6 < noise.nugget < 1.6 * v
    # the nugget is the smallest eigenvalue of Σ (S is singular with 20 rows)
    assert float(torch.linalg.eigvalsh(noise.covariance)[0]) == pytest.approx(noise.nugget)


def test_an_isotropic_discrepancy_is_the_family_likelihood(ppca_class):
    """Σ = s² I with s the Gaussian likelihood's scale: the conditioned program's log
    density equals the family's own at the same z, on the observed entries."""
    module = ppca_class(exact=True)
    d = module.W.shape[0]
    s2 = float(module.likelihood.scale) ** 2
    noise = GaussianDiscrepancy(s2 * torch.eye(d, dtype=torch.float64))
    g = torch.Generator().manual_seed(14)
    x = torch.randn(3, d, generator=g)
    mask = torch.rand(3, d, generator=g) < 0.6
    mask[:, 0] = True
    batch = Batch(torch.where(mask, x, torch.zeros_like(x)), None, mask)
    z = torch.randn(3, module.W.shape[1], generator=g)
    fixed = {sites.LATENT: z}
    own = poutine.trace(poutine.condition(module.model, fixed)).get_trace(batch)
    view = noise.program(module)
    new = poutine.trace(poutine.condition(view.model, fixed)).get_trace(batch)
    torch.testing.assert_close(
        new.log_prob_sum().double(), own.log_prob_sum().double(), rtol=1e-5, atol=1e-4
    )
    assert sites.OBS not in new.nodes and sites.DISCREPANCY in new.nodes


def exact_answer(module, cov, x, mask):
    """z | x_o mean and sd; x_h | x_o mean, sd and log density at ``x``'s values."""
    w, b = module.W.double(), module.b.double()
    o, h = mask, ~mask
    sig_oo = cov[o][:, o]
    prec = torch.eye(w.shape[1], dtype=torch.float64) + w[o].T @ torch.linalg.solve(sig_oo, w[o])
    z_cov = torch.linalg.inv(prec)
    z_mean = z_cov @ w[o].T @ torch.linalg.solve(sig_oo, x.double()[o] - b[o])
    joint = w @ w.T + cov
    gain = joint[h][:, o] @ torch.linalg.inv(joint[o][:, o])
    x_mean = b[h] + gain @ (x.double()[o] - b[o])
    x_cov = joint[h][:, h] - gain @ joint[o][:, h]
    log_p = torch.distributions.MultivariateNormal(x_mean, x_cov).log_prob(x.double()[h])
    return z_mean, z_cov.diagonal().sqrt(), x_mean, x_cov.diagonal().sqrt(), log_p


def test_nuts_with_a_discrepancy_matches_the_exact_posterior(ppca_class):
    module = ppca_class(exact=True)
    d = module.W.shape[0]
    cov = 0.3 * spd(d, 15)
    noise = GaussianDiscrepancy(cov)
    g = torch.Generator().manual_seed(16)
    x = module.marginal().sample((1,)) + torch.randn(1, d, generator=g) * 0.1
    mask = torch.tensor([[True, False, True, True, False]])
    out = condition(
        module,
        x,
        mask,
        method="nuts",
        draws=800,
        warmup=200,
        chains=2,
        seed=0,
        noise=noise,
        x_true=x,
    )
    ess = out.diagnostics["min_ess"][0]
    z_mean, z_sd, x_mean, x_sd, log_p = exact_answer(module, cov, x[0], mask[0])
    z = out.z[sites.LATENT][:, 0].double()
    assert ((z.mean(0) - z_mean).abs() <= 5 * z_sd / ess**0.5).all()
    h = ~mask[0]
    got = out.mean[0, h].double()
    assert ((got - x_mean).abs() <= 5 * x_sd / ess**0.5).all(), (got, x_mean)
    xs = out.x[:, 0][:, h].double()
    # the x draws: one per z draw, so their spread has the ESS of z at most
    assert ((xs.std(0) - x_sd).abs() <= 5 * x_sd / (2 * ess) ** 0.5).all()
    assert torch.equal(out.x[:, 0, mask[0]], x[0, mask[0]].expand(800, -1))
    assert float(out.log_lik[0]) == pytest.approx(float(log_p), abs=0.1)


def test_nuts_samples_an_inferred_scale(ppca_class):
    module = ppca_class(exact=True)
    d = module.W.shape[0]
    noise = GaussianDiscrepancy(0.3 * spd(d, 17), infer_scale=True, scale_prior_sd=0.5)
    x = module.marginal().sample((2,))
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[:, 1] = False
    out = condition(
        module, x, mask, method="nuts", draws=60, warmup=60, chains=1, seed=0, noise=noise
    )
    s = out.z[sites.DISCREPANCY_SCALE]
    assert s.shape == (60, 2, 1) and bool((s > 0).all())
    assert out.z[sites.LATENT].shape == (60, 2, module.W.shape[1])
    with pytest.raises(ConfigError, match="cannot sample the discrepancy's scale"):
        condition(module, x, mask, method="svi", draws=10, noise=noise, steps=2)


@pytest.mark.filterwarnings("ignore:this model was not trained with observation masks")
def test_a_fixed_discrepancy_works_with_every_conditioner(ppca_class):
    module = ppca_class(exact=True)
    d = module.W.shape[0]
    noise = GaussianDiscrepancy(0.3 * spd(d, 18))
    x = module.marginal().sample((2,))
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[:, 2] = False
    for method, options in (("guide", {}), ("svi", {"steps": 5})):
        out = condition(module, x, mask, method=method, draws=20, noise=noise, **options)
        assert torch.equal(out.x[:, :, 0], x[:, 0].expand(20, -1))
        assert bool(torch.isfinite(out.x).all())


def test_bad_discrepancies_get_one_line_errors(ppca_class):
    with pytest.raises(ConfigError, match="square"):
        GaussianDiscrepancy(torch.ones(2, 3))
    with pytest.raises(ConfigError, match="scale_prior_sd"):
        GaussianDiscrepancy(torch.eye(2), scale_prior_sd=0)
    with pytest.raises(DataError, match="at least 2 rows"):
        GaussianDiscrepancy.from_residuals(torch.ones(1, 3), nugget=0.1)
    with pytest.raises(ConfigError, match="nugget must be > 0"):
        GaussianDiscrepancy.from_residuals(torch.randn(4, 3), nugget=0.0)
    with pytest.raises(ConfigError, match="'auto'"):
        GaussianDiscrepancy.from_residuals(torch.randn(4, 3), nugget="best")
    with pytest.raises(DataError, match="all equal"):
        GaussianDiscrepancy.from_residuals(torch.ones(4, 3), nugget=0.1)
    with pytest.raises(DataError, match="entries per row"):
        GaussianDiscrepancy.from_residuals(torch.randn(4, 3), validation=torch.randn(4, 2))
    module = ppca_class(exact=True)
    x = module.marginal().sample((1,))
    with pytest.raises(DataError, match="covers 3 entries"):
        condition(
            module, x, torch.ones_like(x, dtype=torch.bool), noise=GaussianDiscrepancy(torch.eye(3))
        )
    singular = GaussianDiscrepancy(torch.zeros(x.shape[1], x.shape[1]))
    with pytest.raises(ConfigError, match="larger nugget"):
        singular.log_prob_observed(x[0], x, torch.ones(x.shape[1], dtype=torch.bool))


def nugget_scaled(d: int, seed: int, nugget: float = 0.05):
    """A nugget-scaled discrepancy over a rank-deficient S (from 3 residual rows) and
    the plain one with the same Σ = S + ε I."""
    g = torch.Generator().manual_seed(seed)
    rows = torch.randn(4, d, generator=g, dtype=torch.float64)
    scaled = GaussianDiscrepancy.from_residuals(rows, nugget=nugget, infer_scale="nugget")
    plain = GaussianDiscrepancy(scaled.covariance)
    return scaled, plain


def test_a_nugget_scaled_discrepancy_at_scale_one_is_the_plain_one():
    d = 7
    scaled, plain = nugget_scaled(d, 19)
    mask = pattern(d, 20)
    g = torch.Generator().manual_seed(21)
    x, mean = torch.randn(d, generator=g), torch.randn(3, d, generator=g)
    torch.testing.assert_close(
        scaled.log_prob_observed(x, mean, mask), plain.log_prob_observed(x, mean, mask)
    )
    torch.testing.assert_close(
        scaled.conditional(x, mean, mask)[0], plain.conditional(x, mean, mask)[0]
    )
    same = mean[:1].expand(4, 1, d)
    torch.testing.assert_close(
        scaled.log_lik_missing(x[None], mask[None], same)[0],
        plain.log_lik_missing(x[None], mask[None], same)[0],
    )


@pytest.mark.parametrize("s", [0.2, 3.0])
def test_the_nugget_scale_multiplies_the_nugget_only(s):
    """Densities, conditional means and Matheron draws under Σ = S + s ε I against the
    plain discrepancy built with that covariance."""
    d, n = 6, 40000
    scaled, _ = nugget_scaled(d, 22)
    eps = scaled.nugget
    cov = scaled.covariance + (s - 1) * eps * torch.eye(d, dtype=torch.float64)
    plain = GaussianDiscrepancy(cov)
    mask = pattern(d, 23)
    g = torch.Generator().manual_seed(24)
    x, m = torch.randn(1, d, generator=g), torch.randn(d, generator=g)
    scale = torch.full((1,), s)
    torch.testing.assert_close(
        scaled.log_prob_observed(x[0], m[None], mask, scale),
        plain.log_prob_observed(x[0], m[None], mask),
    )
    mu_s, _ = scaled.conditional(x[0], m[None], mask, scale)
    mu_p, chol = plain.conditional(x[0], m[None], mask)
    torch.testing.assert_close(mu_s, mu_p)
    torch.manual_seed(0)
    draws, average = scaled.complete(x, mask[None], m.expand(n, 1, d), torch.full((n, 1), s))
    h = ~mask
    got = draws[:, 0, h].double()
    want = chol @ chol.T
    sd = want.diagonal().sqrt()
    assert ((got.mean(0) - mu_p[0]).abs() <= 5 * sd / math.sqrt(n)).all()
    se = ((want.square() + want.diagonal()[:, None] * want.diagonal()[None]) / n).sqrt()
    assert ((torch.cov(got.T) - want).abs() <= 5 * se).all()
    assert torch.equal(draws[:, 0, mask], x[0, mask].expand(n, -1))
    same = m.expand(3, 1, d)
    torch.testing.assert_close(
        scaled.log_lik_missing(x, mask[None], same, torch.full((3, 1), s))[0],
        plain.log_lik_missing(x, mask[None], same)[0],
    )


def test_nuts_samples_the_nugget_scale(ppca_class):
    module = ppca_class(exact=True)
    d = module.W.shape[0]
    g = torch.Generator().manual_seed(25)
    rows = torch.randn(3, d, generator=g, dtype=torch.float64)
    noise = GaussianDiscrepancy.from_residuals(rows, nugget=0.1, infer_scale="nugget")
    assert noise.latent_sites == (sites.DISCREPANCY_SCALE,)
    x = module.marginal().sample((1,))
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[:, 1] = False
    out = condition(
        module,
        x,
        mask,
        method="nuts",
        draws=40,
        warmup=40,
        chains=1,
        seed=0,
        noise=noise,
        x_true=x,
    )
    assert out.z[sites.DISCREPANCY_SCALE].shape == (40, 1, 1)
    assert bool(torch.isfinite(out.log_lik).all())
    with pytest.raises(ConfigError, match="infer_scale must be"):
        GaussianDiscrepancy(torch.eye(2), infer_scale="rows")
    with pytest.raises(ConfigError, match="needs its nugget"):
        from pyrovae.inference.discrepancy import NuggetScaledDiscrepancy

        NuggetScaledDiscrepancy(torch.eye(2))


def calibrated(d: int, seed: int, factor: float, rows: int = 2000):
    """A discrepancy over Σ = spd(d) with ``rows`` calibration rows drawn from
    N(0, factor Σ)."""
    cov = spd(d, seed)
    g = torch.Generator().manual_seed(seed + 1)
    draws = torch.randn(rows, d, generator=g, dtype=torch.float64)
    calibration = math.sqrt(factor) * draws @ torch.linalg.cholesky(cov).T
    return cov, GaussianDiscrepancy(cov, calibration=calibration)


def test_the_calibrated_scale_is_the_conditional_maximum_likelihood():
    """ŝ against the precision form's conditional, and against the scale the rows were
    drawn with (5 standard errors of ŝ ~ factor χ²_{n|h|} / (n|h|))."""
    d, factor, n = 9, 2.5, 2000
    cov, noise = calibrated(d, 30, factor, n)
    mask = pattern(d, 31)
    o, h = mask, ~mask
    prec = torch.linalg.inv(cov)
    cond_cov = torch.linalg.inv(prec[h][:, h])
    gain = -cond_cov @ prec[h][:, o]
    r = noise.calibration
    resid = r[:, h] - r[:, o] @ gain.T
    direct = float((resid @ torch.linalg.inv(cond_cov) * resid).sum(1).mean() / int(h.sum()))
    got = noise.pattern_scale(mask)
    assert got == pytest.approx(direct, rel=1e-9)
    se = factor * math.sqrt(2 / (n * int(h.sum())))
    assert abs(got - factor) < 5 * se, (got, factor, se)
    # nothing missing: nothing to calibrate
    assert noise.pattern_scale(torch.ones(d, dtype=torch.bool)) == 1.0
    assert GaussianDiscrepancy(cov).pattern_scale(mask) == 1.0


@pytest.mark.parametrize("row_scale", [None, 0.7])
def test_a_calibrated_pattern_is_the_discrepancy_of_the_scaled_covariance(row_scale):
    """Every density and the conditional of a calibrated pattern are those of ŝ Σ (and
    of ŝ s Σ with a row's own scale s)."""
    d = 8
    cov, noise = calibrated(d, 32, 0.4, rows=50)
    mask = pattern(d, 33)
    s_hat = noise.pattern_scale(mask)
    assert s_hat != pytest.approx(1.0, abs=0.05)
    plain = GaussianDiscrepancy(s_hat * cov)
    g = torch.Generator().manual_seed(34)
    x, mean = torch.randn(d, generator=g), torch.randn(3, d, generator=g)
    s = None if row_scale is None else torch.full((3,), row_scale, dtype=torch.float64)
    torch.testing.assert_close(
        noise.log_prob_observed(x, mean, mask, s), plain.log_prob_observed(x, mean, mask, s)
    )
    torch.testing.assert_close(
        noise.log_lik_row(x.double(), mask, mean, s), plain.log_lik_row(x.double(), mask, mean, s)
    )
    mu, chol = noise.conditional(x, mean, mask)
    mu_plain, chol_plain = plain.conditional(x, mean, mask)
    torch.testing.assert_close(mu, mu_plain)
    torch.testing.assert_close(chol, chol_plain)


def test_the_conditioned_program_uses_the_calibrated_scale(ppca_class):
    module = ppca_class(exact=True)
    d = module.W.shape[0]
    g = torch.Generator().manual_seed(35)
    cov = 0.3 * spd(d, 36)
    noise = GaussianDiscrepancy(cov, calibration=3.0 * torch.randn(40, d, generator=g))
    x = torch.randn(2, d, generator=g)
    mask = torch.tensor([[True, False, True, True, False], [True, True, False, True, True]])
    batch = Batch(torch.where(mask, x, torch.zeros_like(x)), None, mask)
    fixed = {sites.LATENT: torch.randn(2, module.W.shape[1], generator=g)}
    got = poutine.trace(poutine.condition(noise.program(module).model, fixed)).get_trace(batch)
    want = (
        sum(
            GaussianDiscrepancy(noise.pattern_scale(mask[b]) * cov).log_prob_observed(
                batch.x[b], module.decode(fixed[sites.LATENT][b]).mean, mask[b]
            )
            for b in range(2)
        )
        + torch.distributions.Normal(0.0, 1.0).log_prob(fixed[sites.LATENT]).sum()
    )
    torch.testing.assert_close(got.log_prob_sum().double(), want.double(), rtol=1e-5, atol=1e-4)


def test_calibrating_from_residuals_holds_rows_out_of_s():
    """Without validation rows, a fifth of the residuals calibrates and S is the
    covariance of the rest; with them, S uses every residual row."""
    g = torch.Generator().manual_seed(37)
    rows = torch.randn(50, 4, generator=g, dtype=torch.float64)
    noise = GaussianDiscrepancy.from_residuals(rows, nugget=1e-3, calibrate=True)
    held = noise.calibration
    assert held.shape == (10, 4)
    kept = torch.stack([r for r in rows if not (r == held).all(1).any()])
    s = torch.cov(kept.T, correction=1)
    eps = 1e-3 * float(torch.diagonal(s).mean())
    torch.testing.assert_close(noise.covariance, s + eps * torch.eye(4, dtype=s.dtype))
    val = torch.randn(7, 4, generator=g, dtype=torch.float64)
    both = GaussianDiscrepancy.from_residuals(rows, validation=val, calibrate=True)
    assert torch.equal(both.calibration, val)
    s_all = torch.cov(rows.T, correction=1)
    torch.testing.assert_close(both.covariance - both.nugget * torch.eye(4, dtype=s.dtype), s_all)
    plain = GaussianDiscrepancy.from_residuals(rows, validation=val)
    assert plain.calibration is None and plain.nugget == both.nugget


def test_bad_calibrations_get_one_line_errors():
    rows = torch.randn(20, 3, dtype=torch.float64)
    with pytest.raises(ConfigError, match="not with infer_scale='nugget'"):
        GaussianDiscrepancy.from_residuals(rows, nugget=0.1, infer_scale="nugget", calibrate=True)
    with pytest.raises(DataError, match="calibration residuals have 2 entries per row"):
        GaussianDiscrepancy(torch.eye(3), calibration=torch.randn(5, 2))
    with pytest.raises(DataError, match="calibration residuals have non-finite"):
        GaussianDiscrepancy(torch.eye(3), calibration=torch.full((5, 3), math.nan))
    with pytest.raises(DataError, match="calibrating the scale needs at least 3"):
        GaussianDiscrepancy.from_residuals(rows[:2], nugget=0.1, calibrate=True)
