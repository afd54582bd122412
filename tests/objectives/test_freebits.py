"""Free bits: lambda = 0 is the ELBO; below the floor the KL term is constant."""

from __future__ import annotations

import pyro
import pytest
import torch
from torch.nn import functional as F

from pyrovae.models import ModuleSpec, build_module
from pyrovae.objectives import FreeBitsELBO, MeanFieldELBO


def _vae():
    torch.manual_seed(0)
    return build_module("vae", ModuleSpec(data_shape=(6,), latent_dim=3, hidden=(8,)))


@pytest.mark.parametrize("beta", [1.0, 4.0])
def test_zero_floor_is_the_analytic_elbo(beta):
    vae = _vae()
    x = (torch.rand(5, 6) > 0.5).float()
    pyro.set_rng_seed(3)
    fb = FreeBitsELBO(free_bits=0.0)(vae.model, vae.guide, x, beta=beta)
    pyro.set_rng_seed(3)
    mf = MeanFieldELBO()(vae.model, vae.guide, x, beta=beta)
    torch.testing.assert_close(fb.loss, mf.loss, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(fb.kl, mf.kl)


def test_floor_replaces_small_kl_and_stops_its_gradient():
    vae = _vae()
    x = (torch.rand(5, 6) > 0.5).float()
    pyro.set_rng_seed(3)
    fb = FreeBitsELBO(free_bits=100.0)(vae.model, vae.guide, x, beta=2.0)  # every dimension below
    expected = -fb.recon.sum() + 2.0 * 5 * 3 * 100.0
    torch.testing.assert_close(fb.loss, expected, rtol=1e-5, atol=1e-3)
    # below the floor the KL has no gradient: the guide gets only the reconstruction's
    params = list(vae.encoder.parameters()) + list(vae.guide_head.parameters())
    g_fb = torch.autograd.grad(fb.loss, params)
    pyro.set_rng_seed(3)
    eps = torch.randn(5, 3)
    loc, scale = vae.guide_head.loc_scale(vae.encoder(x))
    logits = vae.decoder(loc + scale * eps)[:, 0]
    rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    g_rec = torch.autograd.grad(rec, params)
    for a, b in zip(g_fb, g_rec, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_negative_floor_rejected():
    from pyrovae.errors import ConfigError

    with pytest.raises(ConfigError, match="free_bits must be >= 0"):
        FreeBitsELBO(free_bits=-1)
