"""The conditional VAE: with a constant condition it is the VAE; its condition codes,
its beta scaling and its refusals."""

from __future__ import annotations

import pyro
import pytest
import torch
from pyro import poutine

from pyrovae import sites
from pyrovae.data import Batch
from pyrovae.errors import ConfigError, DataError
from pyrovae.inference.loglik import log_likelihood
from pyrovae.models import ModuleSpec, build_module
from pyrovae.objectives import TraceELBO

SPEC = {"data_shape": (1, 8, 8), "latent_dim": 3, "hidden": (16,)}


def _vae_as_cvae(value: float, width: int = 2):
    """A VAE and a CVAE whose condition (``width`` covariates, all ``value``) is constant,
    with the VAE's weights mapped onto the CVAE: the columns of the condition in the first
    layers of the decoder and the guide head get random weights, and their effect at the
    constant condition is subtracted from those layers' biases."""
    torch.manual_seed(0)
    vae = build_module("vae", ModuleSpec(**SPEC))
    opts = {"condition": "covariates", "condition_dim": width}
    cvae = build_module("cvae", ModuleSpec(**SPEC, model_options=opts))
    own, state = vae.state_dict(), {}
    for key, target in cvae.state_dict().items():
        source = own[key]
        if key in state:  # a bias already adjusted with its weight
            continue
        if source.shape == target.shape:
            state[key] = source.clone()
            continue
        # a first layer reading concat(input, c): the input's columns first
        assert key.endswith("weight") and target.shape[1] == source.shape[1] + width, key
        extra = torch.randn(target.shape[0], width)
        state[key] = torch.cat([source, extra], 1)
        bias = key.removesuffix("weight") + "bias"
        state[bias] = own[bias] - value * extra.sum(1)
    cvae.load_state_dict(state)
    return vae.eval(), cvae.eval()


@pytest.mark.parametrize("value", [0.0, 0.7])
def test_constant_condition_is_the_vae(value, digits):
    """Same draws, same weights mapped: the ELBO's terms and the importance-sampled
    log p(x) agree to float32 rounding (relative 1e-5 of values of tens of nats)."""
    vae, cvae = _vae_as_cvae(value)
    x = (digits.train[:16] > 0.5).float()
    batch = Batch(x, cvae.targets(torch.full((16, 2), value)))
    pyro.set_rng_seed(4)
    a = TraceELBO(num_particles=3)(vae.model, vae.guide, x)
    pyro.set_rng_seed(4)
    b = TraceELBO(num_particles=3)(cvae.model, cvae.guide, batch)
    for name in ("loss", "recon", "kl"):
        torch.testing.assert_close(getattr(b, name), getattr(a, name), rtol=1e-5, atol=1e-4)
    torch.manual_seed(5)
    la = log_likelihood(vae, x, samples=50)
    torch.manual_seed(5)
    lb = log_likelihood(cvae, batch, samples=50)
    torch.testing.assert_close(lb, la, rtol=1e-5, atol=1e-4)


def test_a_label_is_coded_one_hot():
    m = build_module(
        "cvae", ModuleSpec(**SPEC, model_options={"condition": "label", "condition_dim": 4})
    )
    y = m.targets([2, 0, 3])
    assert y.dtype == torch.int64
    torch.testing.assert_close(m.code(y), torch.eye(4)[[2, 0, 3]])
    # the decoder's input is concat(z, one-hot c)
    z = torch.randn(3, 3)
    first = m.decoder.net[0]
    seen = []
    handle = first.register_forward_hook(lambda mod, inp, out: seen.append(inp[0]))
    m.decode(z, y)
    handle.remove()
    torch.testing.assert_close(seen[0], torch.cat([z, torch.eye(4)[[2, 0, 3]]], 1))


@pytest.mark.parametrize("prior", ["normal", "conditional"])
def test_beta_scales_the_latent_site_in_model_and_guide(prior):
    m = build_module("cvae", ModuleSpec(**SPEC, prior=prior))
    batch = Batch(torch.rand(5, 1, 8, 8).round(), m.targets(torch.randn(5, 1)))
    guide = poutine.trace(m.guide).get_trace(batch, beta=0.25)
    model = poutine.trace(poutine.replay(m.model, trace=guide)).get_trace(batch, beta=0.25)
    assert guide.nodes[sites.LATENT]["scale"] == 0.25
    assert model.nodes[sites.LATENT]["scale"] == 0.25
    assert model.nodes[sites.OBS]["scale"] == 1.0


def test_the_conditional_prior_reads_the_condition():
    """p(z | c) in the model is the prior network's Normal at the row's code."""
    opts = {"condition": "label", "condition_dim": 3}
    m = build_module("cvae", ModuleSpec(**SPEC, prior="conditional", model_options=opts))
    with torch.no_grad():
        for p in m.prior.parameters():
            p.add_(torch.randn_like(p))
    y = m.targets([0, 1, 2, 1])
    batch = Batch(torch.rand(4, 1, 8, 8).round(), y)
    tr = poutine.trace(m.model).get_trace(batch)
    d = tr.nodes[sites.LATENT]["fn"]
    want = m.prior(torch.eye(3)[[0, 1, 2, 1]])
    torch.testing.assert_close(d.mean, want.mean)
    torch.testing.assert_close(d.stddev, want.stddev)
    assert not torch.allclose(d.mean[0], d.mean[1])
    torch.testing.assert_close(d.mean[1], d.mean[3])


def test_refusals():
    m = build_module(
        "cvae", ModuleSpec(**SPEC, model_options={"condition": "label", "condition_dim": 4})
    )
    x = torch.rand(2, 1, 8, 8).round()
    with pytest.raises(ConfigError, match="needs the condition of every row"):
        m.model(x)
    with pytest.raises(DataError, match="class 4 is out of range"):
        m.targets([1, 4])
    with pytest.raises(DataError, match="is a class label"):
        m.targets([0.5, 1.5])
    cov = build_module("cvae", ModuleSpec(**SPEC, model_options={"condition_dim": 2}))
    with pytest.raises(DataError, match="width 3 but the model's have width 2"):
        cov.targets(torch.zeros(2, 3))
    with pytest.raises(ConfigError, match="unknown condition kind"):
        build_module("cvae", ModuleSpec(**SPEC, model_options={"condition": "colour"}))
    with pytest.raises(ConfigError, match="has no option"):
        build_module("cvae", ModuleSpec(**SPEC, model_options={"top_dim": 2}))
    with pytest.raises(ConfigError, match="vamp"):
        vamp = build_module("cvae", ModuleSpec(**SPEC, prior="vamp"))
        vamp.prior()
