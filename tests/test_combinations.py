"""Bad combinations of components fail with one clear line before training starts."""

from __future__ import annotations

import math

import pytest
import torch

from pyrovae.api import CVAE, HVAE, VAE
from pyrovae.errors import ConfigError, DataError
from pyrovae.guides import GUIDES
from pyrovae.priors import PRIORS

SMALL = dict(hidden=(16,), latent_dim=2, epochs=1)


def test_counts_likelihood_rejects_negative_data(tabular):
    with pytest.raises(DataError, match="poisson likelihood needs non-negative integer counts"):
        VAE(likelihood="poisson", **SMALL).fit(tabular)


def test_eight_bit_likelihood_rejects_off_grid_values(small_digits):
    x = small_digits[0] * 0.999  # grey levels no longer on the k/255 grid
    with pytest.raises(DataError, match="8-bit grey levels"):
        VAE(likelihood="discretized-logistic", **SMALL).fit(x)


def test_meanfield_objective_needs_a_mean_field_model(small_digits):
    with pytest.raises(ConfigError, match="assumes a mean-field guide"):
        HVAE(objective="meanfield", **SMALL).fit(small_digits[0])


@pytest.mark.parametrize("guide", ["full", "lowrank", "iaf"])
def test_free_bits_needs_factorized_guide(guide, small_digits):
    with pytest.raises(ConfigError, match="free bits needs a factorized guide"):
        VAE(objective="freebits", guide=guide, **SMALL).fit(small_digits[0])


def test_flow_components_need_two_latent_dimensions(small_digits):
    with pytest.raises(ConfigError, match="latent_dim >= 2"):
        VAE(prior="flow", **{**SMALL, "latent_dim": 1}).fit(small_digits[0])


def test_unknown_objective_option(small_digits):
    with pytest.raises(ConfigError, match="bad options for objective 'trace'"):
        VAE(objective_options={"free_bits": 1.0}, **SMALL).fit(small_digits[0])


def test_errors_come_before_any_training(small_digits, tmp_path):
    with pytest.raises(ConfigError):
        VAE(objective="freebits", guide="full", **SMALL).fit(small_digits[0], run_dir=tmp_path)
    assert not (tmp_path / "checkpoint.pt").exists() and not (tmp_path / "metrics.csv").exists()
    assert torch.isfinite(small_digits[0]).all()


def test_hvae_checks_the_guide_and_prior_sizes(small_digits):
    from pyrovae.guides import DiagonalNormalGuide
    from pyrovae.priors import StandardNormalPrior

    with pytest.raises(ConfigError, match="the guide has latent size 3"):
        HVAE(guide=DiagonalNormalGuide(16, 3), **SMALL).fit(small_digits[0])
    with pytest.raises(ConfigError, match="the prior has latent size 5"):
        HVAE(prior=StandardNormalPrior(5), top_dim=2, **SMALL).fit(small_digits[0])


# -- every prior with every guide ----------------------------------------------------
def _integral_of(prior, n: int = 40000) -> tuple[float, float]:
    """Total mass of a 2-D prior's density, and its Monte Carlo standard error.

    The mass inside a box B (centre and half-width 8 sd from the prior's own draws) is
    estimated by importance sampling from r = 0.9 T + 0.1 U, T a Normal with 1.5 times
    the draws' sd truncated to B, U uniform on B; r has a closed-form density and does
    not use the prior's, and p / r <= 10 area(B) p stays bounded. The draws are
    stratified (0.9 n from T, 0.1 n from U), which keeps the estimate unbiased. The
    mass outside B is the fraction of the prior's own draws that fall outside it. A
    log density off by a constant c gives a total of about e^c."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        p = prior.reference()  # p(z | c) at one condition code for a conditional prior
        draws = p.sample((n,)).double()
        loc, sd = draws.mean(0), draws.std(0)
        lo, hi = loc - 8 * sd, loc + 8 * sd
        outside = ((draws < lo) | (draws > hi)).any(-1).double()
        normal = torch.distributions.Normal(loc, 1.5 * sd)
        cdf_lo, cdf_hi = normal.cdf(lo), normal.cdf(hi)
        n_t, n_u = int(0.9 * n), n - int(0.9 * n)
        u = torch.rand(n_t, 2, generator=g, dtype=torch.float64)
        z_t = normal.icdf(cdf_lo + u * (cdf_hi - cdf_lo))
        z_u = lo + (hi - lo) * torch.rand(n_u, 2, generator=g, dtype=torch.float64)
        log_t_norm = (cdf_hi - cdf_lo).log().sum()
        log_area = (hi - lo).log().sum()
        mass = var = outside.mean()
        var = outside.var() / n
        for z, share in ((z_t, 0.9), (z_u, 0.1)):
            log_t = normal.log_prob(z).sum(-1) - log_t_norm
            log_r = torch.logaddexp(log_t + math.log(0.9), -log_area + math.log(0.1))
            w = (p.log_prob(z.float()).double() - log_r).exp()
            mass = mass + share * w.mean()
            var = var + share**2 * w.var() / w.numel()
        return float(mass), float(var.sqrt())


FAMILIES = {
    "vae": (VAE, {}),
    "hvae-top-from-x": (HVAE, {"top_from_x": True}),
    "cvae": (CVAE, {}),
}


def _families_for(prior: str) -> list[str]:
    """A conditional prior p(z | c) meets every guide in the cvae; the others in the
    unconditional families."""
    return ["cvae"] if PRIORS.get(prior).conditional else ["vae", "hvae-top-from-x"]


CASES = [(p, g, f) for p in PRIORS.names() for g in GUIDES.names() for f in _families_for(p)]


@pytest.mark.parametrize(("prior", "guide", "family"), CASES)
def test_every_prior_trains_with_every_guide(prior, guide, family, small_digits, digits):
    """Every registered prior with every registered guide: the model builds, a few
    optimizer steps give finite losses, the ELBO is finite, and
    the prior's log_prob integrates to 1 within 4 Monte Carlo standard errors (see
    :func:`_integral_of`).

    The hierarchical VAE with q(z2|x) puts the prior on z2 and the guide on z2 | x, so
    priors built from the guide (the VampPrior) meet every guide there too."""
    cls, extra = FAMILIES[family]
    est = cls(
        prior=prior,
        guide=guide,
        hidden=(16,),
        latent_dim=2,
        epochs=1,
        batch_size=100,
        seed=0,
        prior_options={"components": 5} if prior in ("vamp", "mog") else {},
        **extra,
    )
    x, xv = small_digits
    est.fit(x, digits.labels("train")[: len(x)])  # labels: read by the cvae only
    (row,) = est.history_  # one epoch: three optimizer steps of 100 rows
    assert est.n_epochs_ == 1
    assert math.isfinite(row["train_loss"]) and math.isfinite(row["train_kl"])
    assert math.isfinite(est.evaluate(xv, y=digits.labels("val")[: len(xv)])["elbo"])
    est.module_.eval()
    mass, se = _integral_of(est.module_.prior)
    assert abs(mass - 1.0) < 4 * se, (mass, se)


def test_vamp_density_with_an_iaf_guide_is_the_mean_of_its_components(small_digits):
    """p(z) = (1/K) sum_k q(z | u_k), with each q(z | u_k) computed on its own (one
    pseudo-input through the IAF guide, its context of batch 1), for a plain batch of
    codes, for a batch with a leading particle dimension, and for the prior expanded
    to the data plate as Pyro scores it."""
    est = VAE(
        prior="vamp",
        guide="iaf",
        hidden=(16,),
        latent_dim=3,
        epochs=1,
        batch_size=100,
        prior_options={"components": 4},
    ).fit(small_digits[0])
    module = est.module_.eval()
    prior = module.prior
    torch.manual_seed(0)
    z = 1.5 * torch.randn(6, 5, 3)  # (particles, batch, d)
    with torch.no_grad():
        per_component = torch.stack(
            [
                module.prior_encode(prior.pseudo_inputs[k : k + 1]).log_prob(z)
                for k in range(prior.components)
            ]
        )  # (K, 6, 5)
        want = torch.logsumexp(per_component, 0) - math.log(prior.components)
        p = prior.reference()  # p(z | c) at one condition code for a conditional prior
        torch.testing.assert_close(p.log_prob(z), want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(p.log_prob(z[0]), want[0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(p.expand([5]).log_prob(z), want, rtol=1e-5, atol=1e-5)
    # the components differ, so the mean is not one component's density
    assert (per_component - per_component[0]).abs().amax() > 0.1
