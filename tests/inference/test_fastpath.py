"""The direct log-weights of log p(x) against the log-weights read off Pyro traces.

For every registered prior, guide and likelihood (each in turn, the others at their
defaults), ``log_likelihood`` with the direct path on and off, from the same seed and
the same chunks, draws the same z and must give the same log p(x) up to float32
rounding: 1e-4 nats on values of a few tens of nats (float32 spacing there is 4e-6).
Families without a direct form fall back to the traces and log why.
"""

from __future__ import annotations

import logging

import pytest
import torch

from pyrovae.data import Batch
from pyrovae.guides import GUIDES
from pyrovae.inference import fastpath
from pyrovae.inference.loglik import chunk_size, log_likelihood
from pyrovae.likelihoods import LIKELIHOODS
from pyrovae.models import ModuleSpec, VAEModule, build_module
from pyrovae.priors import PRIORS

#: Values of log p(x) here are tens of nats; float32 rounding of either path is ~1e-5.
ATOL = 1e-4

DATA_FOR_SUPPORT = {
    "binary": lambda x: (x > 0.5).float(),
    "unit": lambda x: x,
    "open-unit": lambda x: x.clamp(0.01, 0.99),
    "real": lambda x: (x - 0.3) / 0.4,
    "8bit": lambda x: (x * 255).round() / 255,
    "count": lambda x: (x * 16).round(),
}

SAMPLES, CHUNK = 11, 4  # three chunks: 4 + 4 + 3


def _module(family="vae", **components):
    spec = ModuleSpec(data_shape=(1, 8, 8), latent_dim=3, hidden=(16,), **components)
    torch.manual_seed(0)
    m = build_module(family, spec)
    with torch.no_grad():  # away from the initial values (zero-mean mixtures, unit scales)
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return m.eval()


def _memory(m, batch: int) -> int:
    """A memory budget that makes chunks of :data:`CHUNK` draws."""
    lo, hi = 1, 2**40  # the least budget that allows two draws per chunk: two draws' bytes
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if chunk_size(m, batch, SAMPLES, mid) < 2 else (lo, mid)
    memory = CHUNK * lo // 2
    assert chunk_size(m, batch, SAMPLES, memory) == CHUNK
    return memory


def _both(m, x, caplog):
    memory = _memory(m, len(x))
    with caplog.at_level(logging.INFO, logger=fastpath.__name__):
        torch.manual_seed(1)
        direct = log_likelihood(m, x, samples=SAMPLES, memory=memory, batch_size=4)
        fell_back = [r.getMessage() for r in caplog.records]
        caplog.clear()
        torch.manual_seed(1)
        traced = log_likelihood(m, x, samples=SAMPLES, memory=memory, batch_size=4, direct=False)
    return direct, traced, fell_back


def _check_same(m, x, caplog):
    direct, traced, fell_back = _both(m, x, caplog)
    assert fell_back == []  # the direct path ran
    assert torch.isfinite(direct).all()
    torch.testing.assert_close(direct, traced, rtol=0, atol=ATOL)


def _with_conditions(m, x, y):
    """``x`` with conditions ``y`` for a conditional family, else ``x``."""
    return Batch(x, m.targets(y)) if m.condition_dim else x


@pytest.mark.parametrize("name", PRIORS.names())
def test_every_prior(name, digits, caplog):
    """A conditional prior is tested in the cvae (one covariate)."""
    family = "cvae" if PRIORS.get(name).conditional else "vae"
    m = _module(family, prior=name)
    x = (digits.train[:6] > 0.5).float()
    _check_same(m, _with_conditions(m, x, torch.linspace(-1, 1, 6)), caplog)


@pytest.mark.parametrize("prior", ["normal", "conditional"])
def test_cvae_with_a_label(prior, digits, caplog):
    """log p(x | c) of the cvae given class labels: direct and traced agree."""
    m = _module("cvae", prior=prior, model_options={"condition": "label", "condition_dim": 10})
    x = (digits.train[:6] > 0.5).float()
    _check_same(m, Batch(x, m.targets(digits.labels("train")[:6])), caplog)


@pytest.mark.parametrize("name", GUIDES.names())
def test_every_guide(name, digits, caplog):
    _check_same(_module(guide=name), (digits.train[:6] > 0.5).float(), caplog)


@pytest.mark.parametrize("name", LIKELIHOODS.names())
def test_every_likelihood(name, digits, caplog):
    x = DATA_FOR_SUPPORT[LIKELIHOODS.get(name).support_kind](digits.train[:6])
    _check_same(_module(likelihood=name), x, caplog)


def test_vamp_prior_with_a_flow_guide(digits, caplog):
    """The VampPrior's components are the guide's own (here IAF) posteriors."""
    _check_same(_module(prior="vamp", guide="iaf"), (digits.train[:6] > 0.5).float(), caplog)


def test_family_without_a_direct_form_falls_back_with_a_reason(digits, caplog):
    m = _module("hvae", prior="mog")
    direct, traced, fell_back = _both(m, (digits.train[:6] > 0.5).float(), caplog)
    assert len(fell_back) == 1  # once per call, not per batch
    assert "HierarchicalVAEModule" in fell_back[0] and "traces" in fell_back[0]
    torch.testing.assert_close(direct, traced, rtol=0, atol=0)


class _TemperedVAE(VAEModule):
    """A VAE whose model differs from the family's (a tempered likelihood)."""

    def model(self, batch, beta: float = 1.0):
        import pyro
        from pyro import poutine

        from pyrovae import sites

        x = self.observed(batch)
        with pyro.plate(sites.DATA_PLATE, x.shape[0]):
            with poutine.scale(scale=beta):
                z = pyro.sample(sites.LATENT, self.prior())
            with poutine.scale(scale=0.5):
                pyro.sample(sites.OBS, self.decode(z), obs=x)


def test_subclass_that_changes_the_model_falls_back(digits, caplog):
    """Its own model is what the traces see; the direct form would ignore the scale."""
    torch.manual_seed(0)
    m = _TemperedVAE(ModuleSpec(data_shape=(1, 8, 8), latent_dim=3, hidden=(16,))).eval()
    x = (digits.train[:6] > 0.5).float()
    direct, traced, fell_back = _both(m, x, caplog)
    assert len(fell_back) == 1 and "_TemperedVAE" in fell_back[0]
    torch.testing.assert_close(direct, traced, rtol=0, atol=0)
    # and what the direct form would have given is a different number
    torch.manual_seed(1)
    untempered = log_likelihood(
        _as_vae(m), x, samples=SAMPLES, memory=_memory(m, x.shape[0]), batch_size=4
    )
    assert (untempered - direct).abs().min() > 1.0


def _as_vae(m):
    """The same weights in a plain VAE."""
    plain = VAEModule(m.spec)
    plain.load_state_dict(m.state_dict())
    return plain.eval()


def test_cache_chunk_bounds_the_rows_of_decoder_output():
    m = _module()  # 64 outputs per row
    rows = fastpath.CHUNK_BYTES // (4 * 64)
    assert fastpath.cache_chunk(m, 10) == rows // 10
    assert fastpath.cache_chunk(m, 10 * rows) == 1
