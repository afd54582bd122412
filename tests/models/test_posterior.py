"""Each model family's guide joint posterior: draws, moments and density.

Tolerances are Monte Carlo standard errors: a sample mean of n draws has s.e. sd / sqrt(n)
and a sample variance has s.e. sqrt((m4 - var^2) / n), m4 the fourth central moment.
"""

from __future__ import annotations

import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

from pyrovae import sites
from pyrovae.data import Batch
from pyrovae.models import MODELS, ModuleSpec, build_module, distribution_moments

#: Every registered family, the hierarchical VAE in both guide orders and with the decoder
#: reading both layers.
FAMILIES = [(name, {}) for name in MODELS.names()] + [
    ("hvae", {"top_from_x": True}),
    ("hvae", {"decoder_reads_top": True}),
    ("hvae", {"top_from_x": True, "decoder_reads_top": True}),
]
#: The model options a family needs here (sizes for the 12-feature data).
FAMILY_OPTIONS = {"hvae": {"top_dim": 3}, "m2": {"n_classes": 3}}


def _module(family, opts, **spec):
    torch.manual_seed(0)
    options = {**FAMILY_OPTIONS.get(family, {}), **opts}
    return build_module(
        family,
        ModuleSpec(data_shape=(12,), latent_dim=6, hidden=(16,), model_options=options, **spec),
    ).eval()


def _var_se(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample variance over dim 0 and its standard error."""
    c = z - z.mean(0)
    var = c.pow(2).mean(0)
    return var, ((c.pow(4).mean(0) - var**2) / z.shape[0]).sqrt()


@pytest.mark.parametrize("family, opts", FAMILIES)
def test_draws_moments_and_density_agree(family, opts):
    m = _module(family, opts)
    x = torch.rand(4, 12).round()
    if m.condition_dim:  # a conditional family reads the rows with their conditions
        x = Batch(x, m.targets(torch.rand(4, m.condition_dim)))
    n = 4000
    with torch.no_grad():
        draws = m.posterior_sample(x, n)
        moments = m.posterior_moments(x, 4000)
        assert draws[sites.LATENT].shape == (n, 4, 6)
        assert set(moments) == set(draws)
        for site, z in draws.items():
            mean, sd = moments[site]
            assert mean.shape == sd.shape == z.shape[1:]
            se = sd / n**0.5
            assert ((z.mean(0) - mean).abs() <= 4.5 * se + 1e-6).all(), site
            var, var_se = _var_se(z)
            # moments from 4000 draws of the first layer carry their own error
            assert ((var - sd**2).abs() <= 4.5 * var_se * 2**0.5 + 1e-6).all(), site
        log_q = m.posterior_log_prob(x, {k: v[:5] for k, v in draws.items()})
    assert log_q.shape == (5, 4)
    if m.has_latent_sites:
        # the joint density is the guide program's own (beta = 1)
        tr = poutine.trace(m.guide).get_trace(x)
        tr.compute_log_prob()
        enumerated = [
            k for k, s in tr.nodes.items() if s["type"] == "sample" and s["infer"].get("enumerate")
        ]
        if enumerated:
            # a discrete guide site the posterior treats marginally (m2's label): the
            # guide's own density summed over its values at the draws of the others
            fixed = {k: tr.nodes[k]["value"] for k in draws}
            cond = poutine.enum(poutine.condition(m.guide, fixed), first_available_dim=-2)
            etr = poutine.trace(cond).get_trace(x)
            etr.compute_log_prob()
            joint = sum(etr.nodes[k]["log_prob"] for k in [*enumerated, *draws])
            own = torch.logsumexp(joint, 0)
        else:
            own = sum(tr.nodes[k]["log_prob"] for k in draws)
        got = m.posterior_log_prob(x, {k: tr.nodes[k]["value"] for k in draws})
        torch.testing.assert_close(got, own)
        assert torch.isfinite(log_q).all()
    else:
        # an autoencoder's code is a point: its draws are copies, its sd is 0
        assert (moments[sites.LATENT].sd == 0).all()
        torch.testing.assert_close(draws[sites.LATENT][0], m.encode(x).mean)


def test_single_site_guide_is_encode():
    m = _module("vae", {}, guide="lowrank")
    x = torch.rand(3, 12).round()
    q = m.encode(x)
    mean, sd = m.posterior_moments(x)[sites.LATENT]
    torch.testing.assert_close(mean, q.mean)
    torch.testing.assert_close(sd, q.stddev)
    z = q.sample((2,))
    torch.testing.assert_close(m.posterior_log_prob(x, {sites.LATENT: z}), q.log_prob(z))


def test_top_from_x_draws_z1_marginally_not_at_the_mean_of_z2():
    """z2 ~ q(z2|x), then z1 ~ q(z1|x, z2): the draws' marginal sd of z1 matches a
    two-stage draw computed directly from the guide's networks and is much wider than
    encode(x), q(z1 | x, z2 = E[z2|x])."""
    m = _module("hvae", {"top_from_x": True})
    with torch.no_grad():
        # make q(z1|x, z2) narrow and strongly dependent on z2
        first = m.q_z1.net[0]
        first.weight[:, -3:] *= 4.0
        last = m.q_z1.net[-1]
        last.weight[6:] = 0.0
        last.bias[6:] = -4.0  # sd softplus(-4) = 0.018
    x = torch.rand(5, 12).round()
    n = 20000
    with torch.no_grad():
        h = m.encoder(x)
        z2 = m.guide_head(h).sample((n,))
        ref = m.q_z1(torch.cat([h.expand(n, *h.shape), z2], -1)).sample()
        ours = m.posterior_sample(x, n)[sites.LATENT]
        sd = m.posterior_moments(x, n)[sites.LATENT].sd
        encoded = m.encode(x).stddev
    v_ref, se_ref = _var_se(ref)
    v_ours, se_ours = _var_se(ours)
    se = (se_ref**2 + se_ours**2).sqrt()
    assert ((v_ours - v_ref).abs() <= 4.5 * se).all()
    assert ((sd**2 - v_ref).abs() <= 4.5 * se).all()
    # encode(x) is q at one value of z2: its sd is a small fraction of the marginal's
    assert (encoded < 0.5 * v_ref.sqrt()).all()
    assert ((v_ref - encoded**2) > 20 * se).all()


def test_hierarchical_moments_in_chunks_agree_with_one_pass(monkeypatch):
    """Two estimates from n = 4000 draws each: means within 4 s.e. of their difference
    (sqrt(2) sd / sqrt(n)); sds within 5 % (the relative s.e. of each is about
    1 / sqrt(2 n) = 1.1 %)."""
    from pyrovae.models import hierarchical

    m = _module("hvae", {"top_from_x": True})
    x = torch.rand(5, 12).round()
    n = 4000
    with torch.no_grad():
        whole = m.posterior_moments(x, n)
        monkeypatch.setattr(hierarchical, "MOMENT_CHUNK_ROWS", 40)  # 8 draws per chunk
        chunked = m.posterior_moments(x, n)
    for site in whole:
        sd = whole[site].sd
        assert ((chunked[site].mean - whole[site].mean).abs() <= 4 * (2 / n) ** 0.5 * sd).all()
        assert ((chunked[site].sd / sd - 1).abs() <= 0.05).all()


def test_moments_without_a_closed_form_come_from_draws():
    """exp(N(mu, s^2)) as a TransformedDistribution (no closed-form mean in torch): the
    mean exp(mu + s^2/2) within 4 s.e. of n draws."""
    mu, s = torch.tensor([0.0, 0.5]), torch.tensor([0.3, 0.2])
    q = dist.TransformedDistribution(dist.Normal(mu, s), [dist.transforms.ExpTransform()])
    with pytest.raises(NotImplementedError):
        q.mean  # noqa: B018
    n = 20000
    torch.manual_seed(0)
    mean, sd = distribution_moments(q, n)
    want = torch.exp(mu + s**2 / 2)
    want_sd = ((torch.exp(s**2) - 1) * torch.exp(2 * mu + s**2)).sqrt()
    assert ((mean - want).abs() <= 4 * want_sd / n**0.5).all()
    assert ((sd - want_sd).abs() <= 0.05 * want_sd).all()
