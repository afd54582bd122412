"""pyrovae's Trace_ELBO objective against a hand-written PyTorch VAE.

The reference (``ReferenceVAE`` of ``benchmarks/bench_throughput.py``) computes the
negative single-sample ELBO with the same networks, the same reparameterized draw and
the Monte Carlo KL term, as ordinary PyTorch code; from the same weights and the same
noise the two give the same loss, terms and gradients (float32 rounding: the two
compute the Bernoulli term with different formulas, equal up to rounding).
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def bench(bench_throughput):
    return bench_throughput


def test_same_loss_and_gradients_from_same_noise(bench):
    """One pyrovae objective evaluation and one reference forward agree, value and gradient."""
    module, reference, objective, _, _ = bench.build_pair(seed=1)
    x = bench.synthetic_binary(32, seed=2)
    torch.manual_seed(7)
    ours = objective(module.model, module.guide, x)
    torch.manual_seed(7)
    theirs, recon, kl = reference(x)
    torch.testing.assert_close(ours.loss, theirs)
    torch.testing.assert_close(ours.recon, recon)
    torch.testing.assert_close(ours.kl, kl)

    (ours.loss / 32).backward()
    (theirs / 32).backward()
    pairs = [
        (module.encoder.net[0], reference.enc_hidden),
        (module.guide_head.linear, reference.enc_out),
        (module.decoder.net[0], reference.dec_hidden),
        (module.decoder.net[2], reference.dec_out),
    ]
    for a, b in pairs:
        torch.testing.assert_close(a.weight.grad, b.weight.grad, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(a.bias.grad, b.bias.grad, rtol=1e-4, atol=1e-6)
