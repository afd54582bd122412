"""IWAE and DReG: K = 1 is the ELBO, the bound grows with K, minibatches are
unbiased, and DReG agrees in expectation with the IWAE gradient at every beta.

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
    x = _binary(5, 6)
    pyro.set_rng_seed(7)
    elbo = TraceELBO()(vae.model, vae.guide, x, beta=beta)
    pyro.set_rng_seed(7)
    iw = cls(num_particles=1)(vae.model, vae.guide, x, beta=beta)
    torch.testing.assert_close(iw.loss, elbo.loss)
    torch.testing.assert_close(iw.recon, elbo.recon)
    torch.testing.assert_close(iw.kl, elbo.kl)
    if cls is IWAE:
        g1 = torch.autograd.grad(iw.loss, list(vae.parameters()))
        pyro.set_rng_seed(7)
        l2 = TraceELBO()(vae.model, vae.guide, x, beta=beta).loss
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


def _linear_gaussian():
    """Probabilistic PCA: z ~ N(0, I), x ~ N(W z + b, 0.5^2 I), an amortized Normal guide."""
    torch.manual_seed(2)
    spec = ModuleSpec(
        data_shape=(3,),
        latent_dim=2,
        net="linear",
        likelihood="gaussian",
        likelihood_options={"scale": 0.5},
    )
    module = build_module("vae", spec)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(5))
    return module, x


def _vamp():
    """A small Bernoulli VAE with the VampPrior, whose p(z) runs through the encoder."""
    torch.manual_seed(2)
    spec = ModuleSpec(
        data_shape=(4,), latent_dim=2, hidden=(6,), prior="vamp", prior_options={"components": 3}
    )
    return build_module("vae", spec), _binary(4, 4, seed=5)


def _hierarchical():
    """The two-layer VAE: the guide's z2 is drawn given z1, both sites scaled by beta."""
    torch.manual_seed(2)
    spec = ModuleSpec(
        data_shape=(4,),
        latent_dim=2,
        hidden=(3,),
        model_options={"layer_hidden": 3, "top_dim": 1},
    )
    return build_module("hvae", spec), _binary(4, 4, seed=5)


DREG_CASES = {"linear-gaussian": _linear_gaussian, "vamp": _vamp, "hvae": _hierarchical}


def dreg_iwae_z_scores(case, beta, reps=60, copies=32, k=5):
    """Paired z-scores, per guide coordinate, of mean(IWAE gradient - DReG gradient).

    Each replicate draws the same K particles for both estimators (same seed), over
    ``copies`` copies of a few data points, so the difference has expectation 0 when
    DReG is unbiased. Parameters only in p(x, z) get the same gradient from both:
    that is checked exactly. Returns (z-scores, DReG variance / IWAE variance summed
    over the guide coordinates).
    """
    module, x = DREG_CASES[case]()
    x = x.repeat(copies, *([1] * (x.dim() - 1)))
    guide_names = _guide_parameter_names(module, x)
    guide = [p for n, p in module.named_parameters() if n in guide_names]
    model = [p for n, p in module.named_parameters() if n not in guide_names]

    def grads(cls, seed):
        pyro.set_rng_seed(seed)
        loss = cls(k)(module.model, module.guide, x, beta=beta).loss
        gg = torch.autograd.grad(loss, guide + model, allow_unused=True)
        flat = [
            (g if g is not None else torch.zeros_like(p)).flatten()
            for g, p in zip(gg, guide + model, strict=True)
        ]
        return torch.cat(flat[: len(guide)]), torch.cat(flat[len(guide) :] or [torch.zeros(0)])

    iw, dr = [], []
    for r in range(reps):
        gi, mi = grads(IWAE, r)
        gd, md = grads(IWAEDReG, r)
        torch.testing.assert_close(md, mi, rtol=1e-4, atol=1e-5)
        iw.append(gi)
        dr.append(gd)
    iw, dr = torch.stack(iw).double(), torch.stack(dr).double()
    diff = iw - dr
    se = diff.std(0) / math.sqrt(reps)
    z = diff.mean(0) / se.clamp_min(1e-12)
    return z, (dr.var(0).sum() / iw.var(0).sum()).item()


def _guide_parameter_names(module, x) -> set[str]:
    """The parameters the guide's density log q(z|x) depends on, found by autograd at
    fixed draws of its joint posterior (encoder and guide heads; for the VampPrior the
    encoder is also part of the model)."""
    with torch.no_grad():
        draws = module.posterior_sample(x, 1)
    named = dict(module.named_parameters())
    log_q = module.posterior_log_prob(x, draws).sum()
    grads = torch.autograd.grad(log_q, list(named.values()), allow_unused=True)
    return {n for n, g in zip(named, grads, strict=True) if g is not None}


@pytest.mark.parametrize("beta", [0.2, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("case", sorted(DREG_CASES))
def test_dreg_guide_gradient_is_unbiased_at_every_beta(case, beta):
    """The expected DReG guide gradient equals the IWAE one within 4 s.e. per coordinate.

    The coefficient (1 - beta) w~ + beta w~^2 of the beta-IWAE bound (see
    ``pyrovae.objectives.iwae``); with Tucker et al.'s w~^2 at beta != 1 the same
    test gives |z| in the tens to hundreds.
    """
    z, _ = dreg_iwae_z_scores(case, beta)
    assert z.abs().max() <= 4, z


def test_dreg_refuses_latent_sites_with_different_scales():
    """The beta-DReG coefficient needs one beta on every latent site of the guide."""
    import pyro.distributions as dist
    from pyro import poutine
    from torch import nn

    from pyrovae.errors import ConfigError

    class TwoScales(nn.Module):
        def __init__(self):
            super().__init__()
            self.loc = nn.Parameter(torch.zeros(2))

        def model(self, batch, beta=1.0):
            x = batch.x
            with pyro.plate("data", x.shape[0]):
                with poutine.scale(scale=0.5):
                    pyro.sample("a", dist.Normal(0.0, 1.0))
                b = pyro.sample("b", dist.Normal(0.0, 1.0))
                pyro.sample("x", dist.Normal(b, 1.0), obs=x)

        def guide(self, batch, beta=1.0):
            x = batch.x
            with pyro.plate("data", x.shape[0]):
                with poutine.scale(scale=0.5):
                    pyro.sample("a", dist.Normal(self.loc[0], 1.0))
                pyro.sample("b", dist.Normal(self.loc[1], 1.0))

    m = TwoScales()
    IWAE(3)(m.model, m.guide, torch.zeros(2))  # IWAE itself is defined for any scales
    with pytest.raises(ConfigError, match="one scale .beta. on every latent site"):
        IWAEDReG(3)(m.model, m.guide, torch.zeros(2))
