"""Every registered component, found through its registry.

A new prior, likelihood, guide, network or model family is tested here the
moment it is registered: output shapes, support, finite gradients; that the
densities of priors and guides integrate to their analytic mass and that their
samples have the density's mean and covariance; that each likelihood's samples
follow its ``log_prob`` and its ``mean`` is the distribution's mean; a short
training run on the built-in digits that improves the objective, and a
save / load round trip.
"""

from __future__ import annotations

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from scipy import special, stats

from pyrovae.api import ESTIMATORS, load
from pyrovae.guides import GUIDES
from pyrovae.likelihoods import LIKELIHOODS
from pyrovae.models import MODELS, ModuleSpec, build_module
from pyrovae.nets import DECODERS, ENCODERS
from pyrovae.objectives import OBJECTIVES
from pyrovae.priors import PRIORS

LATENT = 3


# -- priors ------------------------------------------------------------------
def _family_of(prior: str) -> str:
    """The family a registered prior is tested in: a conditional prior (p(z | c)) needs
    a conditional one."""
    return "cvae" if PRIORS.get(prior).conditional else "vae"


def _prior(name, latent_dim=LATENT):
    """A registered prior, bound to a small VAE (VampPrior needs its encoder; a
    conditional prior, a CVAE's condition of one covariate)."""
    spec = ModuleSpec(data_shape=(1, 8, 8), latent_dim=latent_dim, prior=name, hidden=(16,))
    return build_module(_family_of(name), spec).prior


@pytest.mark.parametrize("name", PRIORS.names())
def test_prior_shapes_and_gradients(name):
    """``prior.reference()`` is ``prior()`` for an unconditional prior and p(z | c) at one
    condition code for a conditional one: the contract holds for that distribution."""
    prior = _prior(name)
    d = prior.reference()
    assert tuple(d.event_shape) == (LATENT,) and tuple(d.batch_shape) == ()
    z = prior.sample(11)
    assert z.shape == (11, LATENT) and torch.isfinite(z).all()
    lp = prior.reference().log_prob(z)
    assert lp.shape == (11,) and torch.isfinite(lp).all()
    params = [p for p in prior.parameters() if p.requires_grad]
    if params:
        grads = torch.autograd.grad(lp.sum(), params, allow_unused=True)
        assert all(g is None or torch.isfinite(g).all() for g in grads)
        assert any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", PRIORS.names())
def test_prior_support_has_a_transform_for_mcmc(name):
    """NUTS (``analyze``'s refinement, ``condition(method="nuts")``) maps every latent
    site to the reals through ``biject_to(site.support)``: each prior's support must have
    such a transform, and its samples must lie in it."""
    from torch.distributions import biject_to

    d = _prior(name).reference()
    transform = biject_to(d.support)
    z = d.sample((5,))
    assert bool(d.support.check(z).all())
    torch.testing.assert_close(transform(transform.inv(z)), z)


@pytest.mark.parametrize("name", PRIORS.names())
def test_prior_is_a_normalized_density_matching_its_samples(name):
    """On a 2-D grid over the box [-15, 15]^2 the density integrates to the prior's mass
    of the box (within 1e-4), and its first and second moments over the box match its
    samples' (see :func:`_check_density_against_samples`).

    Parameters are perturbed first so learnable priors are not at their trivial
    initial values.
    """
    torch.manual_seed(0)
    prior = _prior(name, latent_dim=2)
    with torch.no_grad():
        for p in prior.parameters():
            p.add_(0.3 * torch.randn_like(p))
        d = prior.reference()
        _check_density_against_samples(d, d.log_prob, prior.sample(100_000), half_width=15.0)


def _univariate_cdf(d, x: torch.Tensor) -> torch.Tensor:
    """CDF of a batch of univariate distributions at ``x``, in float64 (SciPy where torch
    has none)."""
    if isinstance(d, dist.StudentT):
        args = (x, d.df, d.loc, d.scale)
        return torch.as_tensor(stats.t.cdf(*(a.detach().double().numpy() for a in args)))
    if isinstance(d, dist.Beta):
        args = (d.concentration1, d.concentration0, x)
        return torch.as_tensor(special.betainc(*(a.detach().double().numpy() for a in args)))
    return d.cdf(x.to(d.mean.dtype)).detach().double()


def _analytic_box_mass(d, half_width: float) -> torch.Tensor | None:
    """P(z in [-h, h]^L) in float64, batch-shaped, where the family has a closed form:
    independent coordinates with a CDF, mixtures of them, and Gaussians (SciPy's
    multivariate Normal CDF, to 1e-10); None for flows."""
    lo, hi = torch.tensor(-half_width), torch.tensor(half_width)
    if isinstance(d, dist.Independent) and d.reinterpreted_batch_ndims == 1:
        base = d.base_dist
        return (_univariate_cdf(base, hi) - _univariate_cdf(base, lo)).prod(-1)
    if isinstance(d, dist.MixtureSameFamily):
        comp = _analytic_box_mass(d.component_distribution, half_width)
        return None if comp is None else (d.mixture_distribution.probs.double() * comp).sum(-1)
    if isinstance(d, (dist.MultivariateNormal, dist.LowRankMultivariateNormal)):
        mean = d.mean.double().reshape(-1, d.event_shape[0]).numpy()
        cov = d.covariance_matrix.double().reshape(-1, *d.event_shape * 2).numpy()
        masses = [
            stats.multivariate_normal(m, c, abseps=1e-10, releps=1e-10).cdf(
                hi.item() * np.ones_like(m), lower_limit=lo.item() * np.ones_like(m)
            )
            for m, c in zip(mean, cov, strict=True)
        ]
        return torch.tensor(masses, dtype=torch.float64).reshape(d.batch_shape)
    return None


def _check_density_against_samples(d, log_density, z, half_width: float, points: int = 601):
    """Check a 2-D density on the box [-h, h]^2 against its distribution and its samples.

    * The grid integral equals the analytic mass of the box (heavy tails leave up to
      1e-3 outside it) within 1e-4. Without a closed form (flows) the mass is the
      fraction of the draws inside the box, within 1e-4 + 4 binomial s.e.
    * E[f(z) 1{z in box}] for f in (z_1, z_2, z_1^2, z_2^2, z_1 z_2) -- the mean and the
      (co)variance -- agree between grid and samples within 4 s.e., the s.e. from the
      grid's own E[f^2 1{box}]: bounded functions, so heavy tails do not spoil the s.e.

    The trapezoid rule's integrals are Richardson-extrapolated from the steps h and 2h
    (every other point): the grid has a node at 0, where the Laplace prior has its kink,
    and at the box's edges, so by Euler-Maclaurin the error is c h^2 + O(h^4)
    (c h^2 = h^2 / 6 = 4e-4 in 2-D for the unit-scale Laplace at h = 0.05).
    """
    g = torch.linspace(-half_width, half_width, points, dtype=torch.float64)
    assert points % 4 == 1  # 0 is a node of the grid and of its every-other-point subgrid
    grid = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1)
    dens = torch.cat(
        [log_density(chunk.float()).double().exp() for chunk in grid.reshape(-1, 2).split(65536)]
    ).reshape(points, points)
    h = (g[1] - g[0]).item()

    def trapezoid(v, step):
        return torch.trapezoid(torch.trapezoid(v, dx=step, dim=-1), dx=step)

    def integral(f):  # f: (points, points), Richardson on the trapezoid rule
        fine = trapezoid(f * dens, h)
        coarse = trapezoid((f * dens)[::2, ::2], 2 * h)
        return ((4 * fine - coarse) / 3).item()

    mass = integral(torch.ones_like(dens))
    inside = (z.abs() <= half_width).all(-1)
    analytic = _analytic_box_mass(d, half_width)
    if analytic is not None:
        assert mass == pytest.approx(analytic.reshape(()).item(), abs=1e-4)
    else:
        frac = inside.double().mean().item()
        se = math.sqrt(frac * (1 - frac) / len(z))
        assert mass == pytest.approx(frac, abs=1e-4 + 4 * se)
    z1, z2 = grid[..., 0], grid[..., 1]
    zs = z.double() * inside[:, None]
    for f_grid, f_draws in [
        (z1, zs[:, 0]),
        (z2, zs[:, 1]),
        (z1**2, zs[:, 0] ** 2),
        (z2**2, zs[:, 1] ** 2),
        (z1 * z2, zs[:, 0] * zs[:, 1]),
    ]:
        expected = integral(f_grid)
        se = math.sqrt(max(integral(f_grid**2) - expected**2, 0.0) / len(z))
        assert f_draws.mean().item() == pytest.approx(expected, abs=4 * se + 1e-9)


# -- likelihoods --------------------------------------------------------------
@pytest.mark.parametrize("shape", [(5,), (1, 4, 4)])
@pytest.mark.parametrize("name", LIKELIHOODS.names())
def test_likelihood_shapes_support_gradients(name, shape):
    lik = LIKELIHOODS.get(name)(shape)
    params = torch.randn(7, lik.param_channels, *shape, requires_grad=True)
    d = lik(params)
    assert tuple(d.event_shape) == shape and tuple(d.batch_shape) == (7,)
    x = d.sample()
    assert x.shape == (7, *shape)
    assert lik.in_support(x).all()
    lik.validate(x)
    lp = d.log_prob(x)
    assert lp.shape == (7,) and torch.isfinite(lp).all()
    (g,) = torch.autograd.grad(lp.sum(), params)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    assert lik.mean(params).shape == (7, *shape)


#: the support of one datum, as (grid, discrete): every value for discrete supports, a
#: fine grid for continuous ones (on (0, 1) a grid of logits u, x = sigmoid(u))
SUPPORT_GRIDS = {
    "binary": (torch.tensor([0.0, 1.0]), True),
    "8bit": (torch.arange(256) / 255.0, True),
    "count": (torch.arange(0, 3000).float(), True),
    "unit": (torch.linspace(0, 1, 20001, dtype=torch.float64), False),
    "open-unit": (torch.linspace(-35, 35, 200001, dtype=torch.float64), False),
    "real": (torch.linspace(-60, 60, 200001, dtype=torch.float64), False),
}

#: decoder outputs: a few settings per likelihood
LIKELIHOOD_SETTINGS = 3


def _likelihood_on_its_support(name):
    """(distribution over one datum with batch (settings,), values x, weights, discrete):
    sum_i weights_i p(x_i) g(x_i) is E[g(x)] (exactly for discrete supports, by the
    trapezoid rule otherwise)."""
    torch.manual_seed(0)
    lik = LIKELIHOODS.get(name)((1,))
    grid, discrete = SUPPORT_GRIDS[lik.support_kind]
    if not discrete:
        lik = lik.double()
    params = 0.7 * torch.randn(LIKELIHOOD_SETTINGS, lik.param_channels, 1).to(grid.dtype)
    d = lik(params)
    if lik.support_kind == "open-unit":  # dx = x (1 - x) du resolves both endpoints
        x = torch.sigmoid(grid)
        weights = torch.ones_like(grid) * (grid[1] - grid[0]) * x * (1 - x)
    else:
        x = grid
        weights = torch.ones_like(grid) if discrete else torch.ones_like(grid) * (grid[1] - grid[0])
    if not discrete:
        weights[[0, -1]] /= 2
    return lik, d, params, x, weights, discrete


def _support_probabilities(d, x, weights):
    """(len(x), settings) float64 probabilities (discrete) or quadrature weights times
    densities (continuous)."""
    with torch.no_grad():
        lp = d.log_prob(x.reshape(-1, 1, 1).to(d.mean.dtype)).double()
    p = torch.where(torch.isfinite(lp), lp.exp(), torch.zeros_like(lp))
    return p * weights.double()[:, None]


#: Bonferroni: the familywise false-alarm rate of each test below is 1e-4
def _z_limit(comparisons: int) -> float:
    return float(stats.norm.isf(1e-4 / (2 * comparisons)))


@pytest.mark.parametrize("name", LIKELIHOODS.names())
def test_likelihood_samples_follow_its_log_prob(name):
    """``sample()`` draws from the distribution that ``log_prob`` defines.

    Discrete supports: the empirical frequency of each cell of adjacent values (merged
    until each expects >= 20 draws) against the cell's probability, binomial s.e.
    Continuous: E[x] and E[x^2] over the grid's range (so heavy tails keep a finite s.e.)
    against the density's, integrated numerically; s.e. from the integrated E[x^2] and
    E[x^4]. All comparisons of one likelihood at a familywise level of 1e-4.
    """
    lik, d, _, x, weights, discrete = _likelihood_on_its_support(name)
    n = 40_000
    torch.manual_seed(1)
    draws = d.sample((n,)).reshape(n, LIKELIHOOD_SETTINGS).double()
    p = _support_probabilities(d, x, weights)
    xs = x.double()
    if discrete:
        z_scores = []
        for j in range(LIKELIHOOD_SETTINGS):
            idx = torch.searchsorted(xs, draws[:, j].contiguous())
            assert (xs[idx.clamp(max=len(xs) - 1)] == draws[:, j]).all()  # on the support
            counts = torch.bincount(idx, minlength=len(xs)).double()
            cells, cell_p, cell_n = [], 0.0, 0.0
            for pk, ck in zip(p[:, j].tolist(), counts.tolist(), strict=True):
                cell_p, cell_n = cell_p + pk, cell_n + ck
                if n * cell_p >= 20:
                    cells.append((cell_p, cell_n))
                    cell_p, cell_n = 0.0, 0.0
            if cells:  # the remainder joins the last cell
                last_p, last_n = cells.pop()
                cells.append((last_p + cell_p, last_n + cell_n))
            for cp, cn in cells:
                se = math.sqrt(n * cp * max(1 - cp, 0.0))
                if se > 0:
                    z_scores.append((cn - n * cp) / se)
                else:
                    assert cn == n * cp
    else:
        inside = (draws >= xs[0]) & (draws <= xs[-1])
        z_scores = []
        for j in range(LIKELIHOOD_SETTINGS):
            m = [(p[:, j] * xs**k).sum().item() for k in range(5)]
            assert m[0] == pytest.approx(1.0, abs=1e-3)  # the range holds the mass
            for k in (1, 2):
                sample = (draws[:, j] ** k * inside[:, j]).mean().item()
                se = math.sqrt((m[2 * k] - m[k] ** 2) / n)
                z_scores.append((sample - m[k]) / se)
    z = torch.tensor(z_scores)
    assert z.abs().max() < _z_limit(len(z)), (name, z.abs().max().item())


@pytest.mark.parametrize("name", LIKELIHOODS.names())
def test_likelihood_mean_is_the_distribution_mean(name):
    """``Likelihood.mean(params)`` is sum_x x p(x) (discrete, to float32 rounding) or
    integral x p(x) dx (continuous, to the quadrature's 1e-5 of the normalisation test),
    with p from ``log_prob``.

    The mass beyond a continuous grid's ends (the Beta's with small concentrations
    piles up within 1e-15 of 0 or 1) enters at the ends, from the analytic CDF.
    """
    lik, d, params, x, weights, discrete = _likelihood_on_its_support(name)
    p = _support_probabilities(d, x, weights)
    expected = (p * x.double()[:, None]).sum(0)
    if discrete:
        assert (p.sum(0) - 1).abs().max() < 1e-6
    else:
        lo, hi = x[[0, -1]].double()
        cdf = _univariate_cdf(d.base_dist, torch.stack([lo, hi]).reshape(2, 1, 1))
        below, upto = cdf.reshape(2, LIKELIHOOD_SETTINGS)
        expected = expected + lo * below + hi * (1 - upto)
    with torch.no_grad():
        mean = lik.mean(params).reshape(LIKELIHOOD_SETTINGS).double()
    tol = 1e-6 if discrete else 1e-5
    assert (mean - expected).abs().max().item() <= tol * (1 + expected.abs().max().item())


# -- guides -------------------------------------------------------------------
@pytest.mark.parametrize("name", GUIDES.names())
def test_guide_shapes_and_reparameterized(name):
    head = GUIDES.get(name)(10, LATENT)
    feats = torch.randn(6, 10)
    q = head(feats)
    assert tuple(q.batch_shape) == (6,) and tuple(q.event_shape) == (LATENT,)
    assert q.has_rsample
    z = q.rsample()
    assert z.shape == (6, LATENT)
    grads = torch.autograd.grad(q.log_prob(z).sum() + z.sum(), list(head.parameters()))
    assert all(torch.isfinite(g).all() for g in grads)
    assert (q.stddev > 0).all()


# -- networks -----------------------------------------------------------------
NET_SHAPES = {"mlp": [(13,), (1, 8, 8)], "conv": [(1, 8, 8), (1, 28, 28), (3, 4, 4)]}


def _any_shape(name: str) -> bool:
    """Whether the network decodes data of any shape; one that does not (a decoder
    of its own grid) declares ``any_data_shape = False`` and gives ``example()``."""
    return getattr(DECODERS.get(name), "any_data_shape", True)


def _net_cases(name):
    """(data shape, net options) on which to check network ``name``."""
    if not _any_shape(name):
        shape, options = DECODERS.get(name).example()
        return [(shape, options)]
    return [(shape, {}) for shape in NET_SHAPES.get(name, [(1, 8, 8)])]


@pytest.mark.parametrize("name", ENCODERS.names())
def test_networks_roundtrip_shapes(name):
    for shape, options in _net_cases(name):
        enc = ENCODERS.get(name)(shape, hidden=(16,), **options)
        dec = DECODERS.get(name)(LATENT, shape, 2, hidden=(16,), **options)
        h = enc(torch.randn(4, *shape))
        assert h.shape == (4, enc.out_features)
        out = dec(torch.randn(5, 4, LATENT))  # extra leading sample dimension
        assert out.shape == (5, 4, 2, *shape)


def test_every_encoder_has_a_decoder():
    assert ENCODERS.names() == DECODERS.names()


# -- model families ----------------------------------------------------------------
#: The model options a family needs (m2: its number of classes).
FAMILY_OPTIONS = {"m2": {"n_classes": 3}}


@pytest.mark.parametrize("family", MODELS.names())
def test_model_family_programs_run(family):
    """A conditional family (``condition_dim`` > 0) runs on a batch with conditions."""
    from pyrovae.data import Batch

    spec = ModuleSpec(
        data_shape=(1, 8, 8),
        latent_dim=LATENT,
        hidden=(16,),
        model_options=FAMILY_OPTIONS.get(family, {}),
    )
    module = build_module(family, spec)
    x = torch.rand(4, 1, 8, 8)
    y = module.targets(torch.rand(4, module.condition_dim)) if module.condition_dim else None
    data = Batch(x, y) if y is not None else x
    from pyrovae.objectives import TraceELBO

    terms = TraceELBO()(module.model, module.guide, data)
    assert torch.isfinite(terms.loss)
    grads = torch.autograd.grad(terms.loss, list(module.parameters()), allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(g is None or torch.isfinite(g).all() for g in grads)
    assert module.encode(data).mean.shape == (4, LATENT)
    assert module.decode_rows(torch.randn(4, LATENT), data).mean.shape == (4, 1, 8, 8)
    assert module.sample_latent(4, *([y] if y is not None else [])).shape == (4, LATENT)


def _component_cases():
    """(family, overrides) covering every registered component at least once."""
    cases = [(f, {}) for f in ESTIMATORS.names()]
    cases += [(_family_of(p), {"prior": p}) for p in PRIORS.names() if p != "normal"]
    cases += [("vae", {"guide": g}) for g in GUIDES.names() if g != "normal"]
    # networks of their own grid only are trained in their own tests (tests/nets/)
    cases += [("vae", {"net": n}) for n in ENCODERS.names() if n != "mlp" and _any_shape(n)]
    cases += [("vae", {"likelihood": lk}) for lk in LIKELIHOODS.names()]
    cases += [("vae", {"objective": o, "particles": 3}) for o in OBJECTIVES.names()]
    # the hierarchical VAE whose guide reads q(z2|x), with the VampPrior as p(z2)
    cases += [("hvae", {"top_from_x": True, "prior": "vamp"})]
    return cases


#: digits (grey levels in [0, 1]) mapped into each kind of support
DATA_FOR_SUPPORT = {
    "binary": lambda x: (x > 0.5).float(),
    "unit": lambda x: x,
    "open-unit": lambda x: x.clamp(0.01, 0.99),
    "real": lambda x: (x - 0.3) / 0.4,
    "8bit": lambda x: (x * 255).round() / 255,
    "count": lambda x: (x * 16).round(),
}


def _data_for(likelihood: str, x: torch.Tensor) -> torch.Tensor:
    """Digits mapped into the likelihood's support."""
    return DATA_FOR_SUPPORT[LIKELIHOODS.get(likelihood).support_kind](x)


@pytest.mark.parametrize(
    "family, overrides",
    _component_cases(),
    ids=lambda v: (
        v if isinstance(v, str) else ",".join(f"{k}={w}" for k, w in v.items()) or "default"
    ),
)
def test_short_training_improves_and_round_trips(family, overrides, small_digits, digits, tmp_path):
    """Every family trains on the digits: a conditional family (cvae) given every row's
    label as its condition, a classifier family (m2) with a third of the rows labelled."""
    x, xv = small_digits
    likelihood = overrides.get("likelihood", "bernoulli")
    x, xv = _data_for(likelihood, x), _data_for(likelihood, xv)
    cls = ESTIMATORS.get(family)
    est = cls(
        epochs=6,
        batch_size=64,
        hidden=(64,),
        latent_dim=4,
        seed=1,
        likelihood=likelihood,
        learning_rate=3e-3,
        **{k: v for k, v in overrides.items() if k != "likelihood"},
    )
    # a classifier family (m2) learns from labels: a third of the rows keep theirs
    y = y_val = None
    if cls.is_conditional:
        y, y_val = digits.labels("train")[: len(x)], digits.labels("val")[: len(xv)]
    if cls.is_classifier:
        y = digits.y_train[: len(x)].clone()
        y[torch.arange(len(y)) % 3 != 0] = -1
        y_val = digits.y_val[: len(xv)]
    assert est.fit(x, y, X_val=xv, y_val=y_val) is est
    hist = est.history_
    assert len(hist) == 6
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert all(math.isfinite(r["train_loss"]) for r in hist)
    est.save(tmp_path / "m.pt")
    again = load(tmp_path / "m.pt")
    assert type(again) is cls
    for a, b in zip(
        est.module_.state_dict().values(), again.module_.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    pyro.set_rng_seed(3)
    e1 = est.evaluate(xv, y=y_val)
    pyro.set_rng_seed(3)
    e2 = again.evaluate(xv, y=y_val)
    assert e1 == pytest.approx(e2, nan_ok=True)


@pytest.mark.parametrize("name", GUIDES.names())
def test_guide_density_normalizes_and_matches_samples(name):
    """q(z|x) integrates to its mass of the box [-12, 12]^2 (within 1e-4), and its mean
    and covariance over the box match its samples' (4 s.e.)."""
    torch.manual_seed(0)
    head = GUIDES.get(name)(4, 2)
    with torch.no_grad():
        for p in head.parameters():
            p.add_(0.3 * torch.randn_like(p))
        q = head(torch.randn(1, 4))
        z = q.sample((100_000,)).reshape(-1, 2)

        def log_density(points):
            return q.log_prob(points.reshape(-1, 1, 2)).reshape(-1)

        _check_density_against_samples(q, log_density, z, half_width=12.0)


def test_gated_layers_compute_a_gated_linear_unit():
    from pyrovae.nets.base import GatedLinear

    layer = GatedLinear(5, 3)
    x = torch.randn(4, 5)
    w, b = layer.linear.weight, layer.linear.bias
    expected = (x @ w[:3].T + b[:3]) * torch.sigmoid(x @ w[3:].T + b[3:])
    torch.testing.assert_close(layer(x), expected, rtol=1e-6, atol=1e-6)
    enc = ENCODERS.get("gated")((1, 8, 8), hidden=(16, 12))
    dec = DECODERS.get("gated")(LATENT, (1, 8, 8), 1, hidden=(16, 12))
    assert [type(m).__name__ for m in enc.net] == ["GatedLinear", "GatedLinear"]
    assert [type(m).__name__ for m in dec.net] == ["GatedLinear", "GatedLinear", "Linear"]
