"""IWAE and DReG: K = 1 is the ELBO, the bound grows with K, minibatches are
unbiased, and DReG agrees in expectation with the IWAE gradient.

Statistical tests compare means of independent replicates and use a stated
tolerance of 4 standard errors (two-sided, so a false alarm has probability
below 1e-4 per comparison under the null; seeds are fixed, so the tests are
deterministic).
"""

from __future__ import annotations

import math

import pyro
import pytest
import torch

from pyrovae.models import ModuleSpec, build_module
from pyrovae.objectives import IWAE, IWAEDReG, TraceELBO


def _vae(seed=0, data_dim=6, latent_dim=2):
    torch.manual_seed(seed)
    return build_module(
        "vae", ModuleSpec(data_shape=(data_dim,), latent_dim=latent_dim, hidden=(8,))
    )


def _binary(n, d, seed=1):
    return (torch.rand(n, d, generator=torch.Generator().manual_seed(seed)) > 0.5).float()


@pytest.mark.parametrize("cls", [IWAE, IWAEDReG])
@pytest.mark.parametrize("beta", [1.0, 4.0])
def test_k1_equals_elbo(cls, beta):
    vae = _vae()
    vae.beta = beta
    x = _binary(5, 6)
    pyro.set_rng_seed(7)
    elbo = TraceELBO()(vae.model, vae.guide, x)
    pyro.set_rng_seed(7)
    iw = cls(num_particles=1)(vae.model, vae.guide, x)
    torch.testing.assert_close(iw.loss, elbo.loss)
    torch.testing.assert_close(iw.recon, elbo.recon)
    torch.testing.assert_close(iw.kl, elbo.kl)
    if cls is IWAE:
        g1 = torch.autograd.grad(iw.loss, list(vae.parameters()))
        pyro.set_rng_seed(7)
        l2 = TraceELBO()(vae.model, vae.guide, x).loss
        g2 = torch.autograd.grad(l2, list(vae.parameters()))
        for a, b in zip(g1, g2, strict=True):
            torch.testing.assert_close(a, b)


def test_bound_does_not_decrease_with_k():
    vae = _vae()
    x = _binary(4, 6)
    means, ses = [], []
    with torch.no_grad():
        for k in (1, 5, 50):
            vals = torch.tensor([-IWAE(k)(vae.model, vae.guide, x).loss.item() for _ in range(300)])
            means.append(vals.mean().item())
            ses.append(vals.std().item() / math.sqrt(len(vals)))
    for i in range(2):
        assert means[i] <= means[i + 1] + 4 * math.hypot(ses[i], ses[i + 1])
    assert means[2] > means[0]  # and it does increase here


def test_minibatch_loss_is_unbiased_for_full_data_loss():
    """E[(N/B) loss(random batch of B)] = E[loss(all N)], within 4 standard errors."""
    vae = _vae()
    x = _binary(12, 6, seed=3)
    n, b, reps = 12, 4, 1500
    g = torch.Generator().manual_seed(0)
    obj = IWAE(10)
    with torch.no_grad():
        full = torch.tensor([obj(vae.model, vae.guide, x).loss.item() for _ in range(reps)])
        mini = torch.tensor(
            [
                n / b * obj(vae.model, vae.guide, x[torch.randperm(n, generator=g)[:b]]).loss.item()
                for _ in range(reps)
            ]
        )
    se = math.hypot(full.std().item(), mini.std().item()) / math.sqrt(reps)
    assert abs(full.mean().item() - mini.mean().item()) < 4 * se


def test_dreg_gradient_agrees_in_expectation_with_iwae():
    """Mean guide-parameter gradients of both estimators agree within 4 s.e. per coordinate.

    The model parameters get the same IWAE gradient from both (checked exactly).
    """
    vae = _vae(seed=2, data_dim=4, latent_dim=2)
    x = _binary(1, 4, seed=5).repeat(64, 1)
    guide_params = list(vae.encoder.parameters()) + list(vae.guide_head.parameters())
    model_params = list(vae.decoder.parameters())

    def grads(cls, seed):
        pyro.set_rng_seed(seed)
        loss = cls(5)(vae.model, vae.guide, x).loss
        gg = torch.autograd.grad(loss, guide_params + model_params)
        return (
            torch.cat([g.flatten() for g in gg[: len(guide_params)]]),
            torch.cat([g.flatten() for g in gg[len(guide_params) :]]),
        )

    iw, dr = [], []
    for r in range(150):
        gi, mi = grads(IWAE, r)
        gd, md = grads(IWAEDReG, r)
        torch.testing.assert_close(md, mi, rtol=1e-4, atol=1e-5)
        iw.append(gi)
        dr.append(gd)
    iw, dr = torch.stack(iw), torch.stack(dr)
    diff = (iw.mean(0) - dr.mean(0)).abs()
    se = (iw.var(0) / len(iw) + dr.var(0) / len(dr)).sqrt()
    assert (diff <= 4 * se + 1e-6).all()
    assert dr.var(0).sum() < iw.var(0).sum()  # and it has lower variance
