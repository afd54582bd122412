"""The enum objective (TraceEnum_ELBO): on a model without discrete sites it is the trace
ELBO, value, gradient and terms; the M2 family refuses objectives that cannot sum out."""

from __future__ import annotations

import pyro
import torch

from pyrovae.models import ModuleSpec, build_module
from pyrovae.objectives import OBJECTIVES, EnumELBO, TraceELBO


def test_enum_equals_trace_without_discrete_sites():
    torch.manual_seed(0)
    vae = build_module("vae", ModuleSpec(data_shape=(6,), latent_dim=3, hidden=(8,)))
    x = (torch.rand(7, 6) > 0.5).float()
    out = {}
    for cls in (TraceELBO, EnumELBO):
        pyro.set_rng_seed(5)
        terms = cls(num_particles=2)(vae.model, vae.guide, x, beta=2.0)
        grads = torch.autograd.grad(terms.loss, list(vae.parameters()))
        out[cls] = (terms, grads)
    (t, g), (e, h) = out[TraceELBO], out[EnumELBO]
    torch.testing.assert_close(e.loss, t.loss)
    torch.testing.assert_close(e.recon, t.recon)
    torch.testing.assert_close(e.kl, t.kl)
    for a, b in zip(g, h, strict=True):
        torch.testing.assert_close(a, b)


def test_every_objective_names_its_enumerating_version():
    for name, cls in OBJECTIVES.items():
        assert cls.enumerated in (None, *OBJECTIVES.names()), name
        if cls.enumerated is not None:
            assert OBJECTIVES.get(cls.enumerated).enumerates
