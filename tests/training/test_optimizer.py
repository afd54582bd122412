"""The trainer's optimizer: fused Adam where available, the same updates as Adam."""

from __future__ import annotations

import torch

from pyrovae.api import VAE
from pyrovae.models import ModuleSpec, build_module
from pyrovae.objectives import TraceELBO
from pyrovae.training import make_adam, train_step


def _module(seed: int):
    torch.manual_seed(seed)
    return build_module("vae", ModuleSpec(data_shape=(12,), latent_dim=3, hidden=(16,)))


def test_fused_adam_follows_the_default_implementation():
    x = (torch.rand(32, 12, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    a, b = _module(0), _module(0)
    opt_a = make_adam(a.parameters(), lr=1e-2)
    opt_b = torch.optim.Adam(b.parameters(), lr=1e-2)
    assert opt_a.defaults["fused"] is True and not opt_b.defaults["fused"]
    for step in range(30):
        for module, opt in ((a, opt_a), (b, opt_b)):
            torch.manual_seed(step)  # the same reparameterization noise on both sides
            train_step(module, TraceELBO(), opt, x)
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        # the updates differ only in rounding: after 30 steps of size ~1e-2 the
        # parameters agree to 1e-5 (float32 rounding accumulated over the steps)
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-5, msg=name)


def test_devices_without_a_fused_kernel_get_plain_adam():
    assert make_adam([torch.nn.Parameter(torch.zeros(3))], lr=0.1).defaults["fused"] is True
    meta = torch.nn.Parameter(torch.zeros(3, device="meta"))  # not a CPU or CUDA device
    assert not make_adam([meta], lr=0.1).defaults["fused"]


def test_the_trainer_uses_fused_adam_and_resumes_with_it(tmp_path):
    x = (torch.rand(60, 12, generator=torch.Generator().manual_seed(2)) < 0.5).float()
    est = VAE(hidden=(8,), latent_dim=2, epochs=2, likelihood="bernoulli")
    est.fit(x, run_dir=tmp_path / "run")
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    groups = ckpt["trainer"]["optimizer"]["param_groups"]
    assert all(g["fused"] is True for g in groups)
