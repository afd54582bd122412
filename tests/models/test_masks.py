"""Every model family scores an observation mask: only observed entries enter the loss,
missing ones (NaN) give no NaN gradients, an all-observed mask changes nothing, and the
encoder of a mask-trained family reads the mask (pyrovae.models.base)."""

from __future__ import annotations

import pyro
import pytest
import torch

from pyrovae.data import Batch
from pyrovae.errors import ConfigError
from pyrovae.inference.fastpath import LogWeightChunks
from pyrovae.models import MODELS, ModuleSpec, build_module
from pyrovae.nets import MASK_ENCODERS, SetMaskEncoder
from pyrovae.objectives import TraceELBO

#: Model options some families need (the m2 family's label classes).
FAMILY_OPTIONS = {"m2": {"n_classes": 3}}


def _module(family: str, mask_input: bool, mask_encoder: str = "concat"):
    torch.manual_seed(0)
    spec = ModuleSpec(
        data_shape=(6,),
        latent_dim=2,
        hidden=(8,),
        likelihood="gaussian",
        mask_input=mask_input,
        mask_encoder=mask_encoder,
        model_options=FAMILY_OPTIONS.get(family, {}),
    )
    return build_module(family, spec)


def _batch(module, x, mask):
    """``Batch(x, mask=mask)``, with one covariate per row for a conditional family."""
    y = None
    if module.condition_dim:
        g = torch.Generator().manual_seed(2)
        y = module.targets(torch.rand(x.shape[0], module.condition_dim, generator=g))
    return Batch(x, y, mask)


def _refuses_masks(module) -> bool:
    """Whether the family refuses masked batches, checking that it does so with one line
    naming the masks (the m2 family: its label enumeration has no masked form)."""
    x, mask = _data()
    try:
        TraceELBO()(module.model, module.guide, _batch(module, x, mask))
    except ConfigError as exc:
        # Pyro appends the trace's shapes on further lines; the CLI shows the first
        assert "does not take observation masks" in str(exc).splitlines()[0]
        return True
    return False


#: (mask_input, mask_encoder): the plain encoder and every registered mask encoder
READERS = [(False, "concat")] + [(True, name) for name in MASK_ENCODERS.names()]


def _data():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 6, generator=g)
    mask = torch.rand(5, 6, generator=g) > 0.4
    mask[:, 0] = True
    return x, mask


@pytest.mark.parametrize(("mask_input", "mask_encoder"), READERS)
@pytest.mark.parametrize("family", MODELS.names())
def test_nan_missing_entries_give_finite_loss_and_gradients(family, mask_input, mask_encoder):
    module = _module(family, mask_input, mask_encoder)
    if _refuses_masks(module):
        return
    x, mask = _data()
    x_nan = torch.where(mask, x, torch.full_like(x, float("nan")))
    pyro.set_rng_seed(0)
    terms = TraceELBO()(module.model, module.guide, _batch(module, x_nan, mask))
    assert torch.isfinite(terms.loss)
    terms.loss.backward()
    for p in module.parameters():
        assert p.grad is None or torch.isfinite(p.grad).all()


@pytest.mark.parametrize("mask_encoder", MASK_ENCODERS.names())
@pytest.mark.parametrize("family", MODELS.names())
def test_missing_values_do_not_matter(family, mask_encoder):
    module = _module(family, True, mask_encoder)
    if _refuses_masks(module):
        return
    module.eval()
    x, mask = _data()
    other = torch.where(mask, x, x + 100.0)
    losses = []
    for data in (x, other):
        pyro.set_rng_seed(0)
        losses.append(TraceELBO()(module.model, module.guide, _batch(module, data, mask)).loss)
    torch.testing.assert_close(losses[0], losses[1])


@pytest.mark.parametrize("family", MODELS.names())
def test_all_observed_mask_equals_no_mask(family):
    module = _module(family, True)
    if _refuses_masks(module):
        return
    module.eval()
    x, _ = _data()
    out = []
    for mask in (None, torch.ones_like(x, dtype=torch.bool)):
        pyro.set_rng_seed(0)
        out.append(TraceELBO()(module.model, module.guide, _batch(module, x, mask)).loss)
    torch.testing.assert_close(out[0], out[1])


@pytest.mark.parametrize("mask_encoder", MASK_ENCODERS.names())
def test_mask_input_encoder_reads_the_mask(mask_encoder):
    module = _module("vae", True, mask_encoder)
    x, mask = _data()
    a = module.encode(x, mask=mask).mean
    b = module.encode(x, mask=torch.ones_like(mask)).mean
    assert not torch.allclose(a, b)


def test_concat_encoder_reads_x_and_the_mask():
    module = _module("vae", True, "concat")
    assert module.encoder.body.net[0].in_features == 12  # x and the mask


def test_set_encoder_pools_a_sum_over_the_observed_entries():
    """features = head(sum_d m_d h([x_d e_d, e_d])): with the head removed, the pooled
    vector of a row is the sum of its observed entries' terms, whatever their order."""
    enc = SetMaskEncoder((6,), hidden=(8,), embed_dim=3, width=5)
    enc.head = torch.nn.Identity()
    x, mask = _data()
    pooled = enc(x, mask)
    e = enc.embedding
    for n in range(x.shape[0]):
        terms = [enc.entry(torch.cat([x[n, d] * e[d], e[d]])) for d in range(6) if mask[n, d]]
        torch.testing.assert_close(pooled[n], torch.stack(terms).sum(0))
    # one observed entry alone: the pooled vector is its own term
    single = torch.zeros_like(mask)
    single[:, 2] = True
    want = enc.entry(torch.cat([x[:, 2:3] * e[2], e[2].expand(x.shape[0], 3)], -1))
    torch.testing.assert_close(enc(x, single), want)


@pytest.mark.parametrize("family", ["vae", "cvae"])
@pytest.mark.parametrize("mask_input", [False, True])
def test_direct_log_weights_with_a_mask_match_the_traces(mask_input, family):
    module = _module(family, mask_input)
    module.eval()
    x, mask = _data()
    data = _batch(module, x, None) if module.condition_dim else x  # with its conditions
    with torch.no_grad():
        torch.manual_seed(5)
        direct = LogWeightChunks(module, True).sampler(data, mask)(7)
        torch.manual_seed(5)
        traced = LogWeightChunks(module, False).sampler(data, mask)(7)
    torch.testing.assert_close(direct, traced, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("family", ["vae", "cvae"])
@pytest.mark.parametrize("mask_input", [False, True])
def test_trace_elbo_takes_the_direct_route_with_a_mask(mask_input, family):
    module = _module(family, mask_input)
    x, mask = _data()
    x_nan = torch.where(mask, x, torch.full_like(x, float("nan")))
    objective = TraceELBO()
    batch = _batch(module, x_nan, mask)
    pyro.set_rng_seed(0)
    first = objective(module.model, module.guide, batch, beta=0.7)  # traces, validated
    assert objective.route(module.model, module.guide, batch) == "direct"
    pyro.set_rng_seed(0)
    second = objective(module.model, module.guide, batch, beta=0.7)  # the direct form
    torch.testing.assert_close(second.loss, first.loss, rtol=1e-5, atol=1e-5)
