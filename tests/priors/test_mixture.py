"""The diagonal-Normal mixture's fast log density against torch's MixtureSameFamily."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

from pyrovae.models import ModuleSpec, build_module
from pyrovae.priors import PRIORS
from pyrovae.priors.mixture import DiagonalNormalMixture


def _pair(k: int = 7, d: int = 5, small: float = 1.0):
    torch.manual_seed(0)
    loc = 2.0 * torch.randn(k, d, dtype=torch.float64)
    scale = small * (0.05 + torch.rand(k, d, dtype=torch.float64))
    logits = torch.randn(k, dtype=torch.float64)
    mix = dist.Categorical(logits=logits)
    comp = dist.Normal(loc, scale).to_event(1)
    return DiagonalNormalMixture(mix, comp), dist.MixtureSameFamily(mix, comp)


@pytest.mark.parametrize("small", [1.0, 0.01])
def test_log_prob_matches_the_elementwise_mixture(small):
    fast, ref = _pair(small=small)
    z = torch.cat([ref.sample((300,)), 4.0 * torch.randn(300, 5, dtype=torch.float64)])
    # float64 in, float64 math: agreement to rounding (1e-9 relative; the far points of
    # the small-scale mixture have log densities near -1e6)
    torch.testing.assert_close(fast.log_prob(z), ref.log_prob(z), rtol=1e-9, atol=1e-9)
    # float32 in: the products are still taken in float64, so only the input rounding
    # and the float32 result differ (tolerance 1e-4 nats, float32 of values ~ 10-1000)
    z32 = z.float()
    got = fast.log_prob(z32)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), ref.log_prob(z32.double()), rtol=1e-6, atol=1e-4)


def test_expanded_and_batched_values_keep_the_broadcast_shape():
    fast, ref = _pair()
    z = ref.sample((4, 3))  # (4, 3, d)
    big = fast.expand([4, 3])
    assert isinstance(big, DiagonalNormalMixture) and big.batch_shape == (4, 3)
    torch.testing.assert_close(big.log_prob(z), ref.log_prob(z), rtol=0, atol=1e-9)
    # a value with fewer batch dims than the distribution broadcasts like torch's
    z1 = z[0, 0]
    assert big.log_prob(z1).shape == (4, 3)
    torch.testing.assert_close(big.log_prob(z1), ref.expand([4, 3]).log_prob(z1))


def test_other_components_use_the_inherited_log_prob():
    torch.manual_seed(1)
    comp = dist.StudentT(3.0, torch.randn(4, 2), torch.ones(4, 2)).to_event(1)
    mix = dist.Categorical(logits=torch.zeros(4))
    fast, ref = DiagonalNormalMixture(mix, comp), dist.MixtureSameFamily(mix, comp)
    assert fast._compact_params() is None
    z = torch.randn(10, 2)
    torch.testing.assert_close(fast.log_prob(z), ref.log_prob(z))


def test_gradients_match_the_elementwise_mixture():
    torch.manual_seed(2)
    loc = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    raw = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    z = torch.randn(20, 3, dtype=torch.float64)
    grads = []
    for cls in (DiagonalNormalMixture, dist.MixtureSameFamily):
        mix = dist.Categorical(logits=torch.zeros(6, dtype=torch.float64))
        d = cls(mix, dist.Normal(loc, raw.exp()).to_event(1))
        grads.append(torch.autograd.grad(d.log_prob(z).sum(), (loc, raw)))
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", ["mog", "vamp"])
def test_mixture_priors_score_a_plated_site_like_the_reference(name):
    """Inside ``pyro.plate`` the site's distribution is the expanded prior; its
    log density must equal torch's elementwise mixture's."""
    torch.manual_seed(3)
    prior = PRIORS.get(name)(latent_dim=4)
    if name == "vamp":
        enc = torch.nn.Linear(6, 8)

        class _Host:
            data_shape = (6,)

            @staticmethod
            def prior_encode(x):
                loc, raw = enc(x).chunk(2, -1)
                return dist.Normal(loc, torch.nn.functional.softplus(raw)).to_event(1)

        prior.bind(_Host())
    with torch.no_grad():
        p = prior()
    assert isinstance(p, DiagonalNormalMixture)

    def model():
        with pyro.plate("data", 9):
            pyro.sample("z", prior())

    tr = poutine.trace(model).get_trace()
    site = tr.nodes["z"]
    ref = dist.MixtureSameFamily(p.mixture_distribution, p.component_distribution)
    torch.testing.assert_close(
        site["fn"].log_prob(site["value"]).detach(), ref.log_prob(site["value"]).detach()
    )


@pytest.mark.parametrize("guide", ["normal", "iaf"])
def test_building_the_vamp_prior_draws_no_random_numbers(guide):
    """The prior's distribution is built in every model call (every chunk of importance
    draws): it must leave the random stream alone, or the guide's next draws depend on
    how often it was built. (Reading a flow posterior's ``mean`` draws 1000 samples.)"""
    spec = ModuleSpec(data_shape=(4,), latent_dim=2, hidden=(8,), prior="vamp", guide=guide)
    prior = build_module("vae", spec).prior
    torch.manual_seed(0)
    with torch.no_grad():
        prior()
    assert torch.equal(torch.get_rng_state(), torch.manual_seed(0).get_state())
