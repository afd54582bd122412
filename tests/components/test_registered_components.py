"""Every registered component, found through its registry.

A new prior, likelihood, guide, network or model family is tested here the
moment it is registered: output shapes, support, finite gradients, a short
training run on the built-in digits that improves the objective, and a
save / load round trip.
"""

from __future__ import annotations

import math

import pyro
import pytest
import torch

from pyrovae.api import ESTIMATORS, load
from pyrovae.guides import GUIDES
from pyrovae.likelihoods import LIKELIHOODS
from pyrovae.models import MODELS, ModuleSpec, build_module
from pyrovae.nets import DECODERS, ENCODERS
from pyrovae.objectives import OBJECTIVES
from pyrovae.priors import PRIORS

LATENT = 3


# -- priors ------------------------------------------------------------------
def _prior(name, latent_dim=LATENT):
    """A registered prior, bound to a small VAE (VampPrior needs its encoder)."""
    spec = ModuleSpec(data_shape=(1, 8, 8), latent_dim=latent_dim, prior=name, hidden=(16,))
    return build_module("vae", spec).prior


@pytest.mark.parametrize("name", PRIORS.names())
def test_prior_shapes_and_gradients(name):
    prior = _prior(name)
    d = prior()
    assert tuple(d.event_shape) == (LATENT,) and tuple(d.batch_shape) == ()
    z = prior.sample(11)
    assert z.shape == (11, LATENT) and torch.isfinite(z).all()
    lp = prior().log_prob(z)
    assert lp.shape == (11,) and torch.isfinite(lp).all()
    params = [p for p in prior.parameters() if p.requires_grad]
    if params:
        grads = torch.autograd.grad(lp.sum(), params, allow_unused=True)
        assert all(g is None or torch.isfinite(g).all() for g in grads)
        assert any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", PRIORS.names())
def test_prior_is_a_normalized_density_matching_its_samples(name):
    """On a 2-D grid the density integrates to 1 and its mean matches the samples' mean.

    Parameters are perturbed first so learnable priors are not at their trivial
    initial values. Tolerances: 0.01 on the integral (grid truncation of heavy
    tails), 5 standard errors on the mean.
    """
    torch.manual_seed(0)
    prior = _prior(name, latent_dim=2)
    with torch.no_grad():
        for p in prior.parameters():
            p.add_(0.3 * torch.randn_like(p))
        g = torch.linspace(-15, 15, 901)
        cell = (g[1] - g[0]) ** 2
        grid = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
        dens = prior().log_prob(grid).exp() * cell
        assert dens.sum().item() == pytest.approx(1.0, abs=0.01)
        z = prior.sample(20000)
        grid_mean = (dens[:, None] * grid).sum(0) / dens.sum()
        se = z.std(0) / math.sqrt(z.shape[0])
        assert ((z.mean(0) - grid_mean).abs() < 5 * se + 0.01).all()


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


@pytest.mark.parametrize("name", ENCODERS.names())
def test_networks_roundtrip_shapes(name):
    for shape in NET_SHAPES.get(name, [(1, 8, 8)]):
        enc = ENCODERS.get(name)(shape, hidden=(16,))
        dec = DECODERS.get(name)(LATENT, shape, 2, hidden=(16,))
        h = enc(torch.randn(4, *shape))
        assert h.shape == (4, enc.out_features)
        out = dec(torch.randn(5, 4, LATENT))  # extra leading sample dimension
        assert out.shape == (5, 4, 2, *shape)


def test_every_encoder_has_a_decoder():
    assert ENCODERS.names() == DECODERS.names()


# -- model families ----------------------------------------------------------------
@pytest.mark.parametrize("family", MODELS.names())
def test_model_family_programs_run(family):
    module = build_module(family, ModuleSpec(data_shape=(1, 8, 8), latent_dim=LATENT, hidden=(16,)))
    x = torch.rand(4, 1, 8, 8)
    from pyrovae.objectives import TraceELBO

    terms = TraceELBO()(module.model, module.guide, x)
    assert torch.isfinite(terms.loss)
    grads = torch.autograd.grad(terms.loss, list(module.parameters()), allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(g is None or torch.isfinite(g).all() for g in grads)
    assert module.encode(x).mean.shape == (4, LATENT)
    assert module.decode(torch.randn(4, LATENT)).mean.shape == (4, 1, 8, 8)
    assert module.sample_latent(5).shape == (5, LATENT)


def _component_cases():
    """(family, overrides) covering every registered component at least once."""
    cases = [(f, {}) for f in ESTIMATORS.names()]
    cases += [("vae", {"prior": p}) for p in PRIORS.names() if p != "normal"]
    cases += [("vae", {"guide": g}) for g in GUIDES.names() if g != "normal"]
    cases += [("vae", {"net": n}) for n in ENCODERS.names() if n != "mlp"]
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
def test_short_training_improves_and_round_trips(family, overrides, small_digits, tmp_path):
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
    assert est.fit(x, X_val=xv) is est
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
    e1 = est.evaluate(xv)
    pyro.set_rng_seed(3)
    e2 = again.evaluate(xv)
    assert e1 == pytest.approx(e2, nan_ok=True)


@pytest.mark.parametrize("name", GUIDES.names())
def test_guide_density_normalizes_and_matches_samples(name):
    """q(z|x) integrates to 1 on a 2-D grid and its mean matches its samples (5 s.e.)."""
    torch.manual_seed(0)
    head = GUIDES.get(name)(4, 2)
    with torch.no_grad():
        for p in head.parameters():
            p.add_(0.3 * torch.randn_like(p))
        q = head(torch.randn(1, 4))
        g = torch.linspace(-12, 12, 601)
        cell = (g[1] - g[0]) ** 2
        grid = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 1, 2)
        dens = q.log_prob(grid).exp().reshape(-1) * cell
        assert dens.sum().item() == pytest.approx(1.0, abs=0.01)
        z = q.sample((20000,)).reshape(-1, 2)
        grid_mean = (dens[:, None] * grid.reshape(-1, 2)).sum(0) / dens.sum()
        se = z.std(0) / math.sqrt(z.shape[0])
        assert ((z.mean(0) - grid_mean).abs() < 5 * se + 0.01).all()


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
