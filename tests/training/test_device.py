"""Device selection (``--device auto``) and mixed precision (``--amp``).

There is no GPU here: CUDA paths are tested by their resolution and their errors, and
the autocast mechanism itself on the CPU (bfloat16 autocast exists there too)."""

from __future__ import annotations

import logging

import pyro
import pytest
import torch

from pyrovae.api import VAE, load
from pyrovae.cli import main
from pyrovae.config import coerce, resolve_device
from pyrovae.errors import ConfigError
from pyrovae.training import load_checkpoint, save_checkpoint
from pyrovae.training.precision import amp_allowed, autocast_networks, network_bodies

SMALL = dict(hidden=(32,), latent_dim=2, batch_size=64, patience=0)


def _no_accelerators(monkeypatch, cuda=False, mps=False):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


def test_auto_resolves_in_order(monkeypatch):
    assert coerce("device", "auto") == "auto"
    _no_accelerators(monkeypatch)
    assert resolve_device("auto") == "cpu"
    _no_accelerators(monkeypatch, mps=True)
    assert resolve_device("auto") == "mps"
    _no_accelerators(monkeypatch, cuda=True, mps=True)
    assert resolve_device("auto") == "cuda"
    assert resolve_device("cpu") == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_auto_trains_on_cpu_here(small_digits, tmp_path):
    x, xv = small_digits
    vae = VAE(device="auto", epochs=1, **SMALL).fit(x, X_val=xv, run_dir=tmp_path)
    assert vae.device == "auto" and vae.device_ == torch.device("cpu")
    assert vae.reconstruct(x[:3]).device.type == "cpu"
    assert load_checkpoint(tmp_path / "checkpoint.pt")["params"]["device"] == "auto"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_checkpoint_loads_here(small_digits, tmp_path, caplog):
    x, xv = small_digits
    VAE(epochs=1, **SMALL).fit(x, X_val=xv, run_dir=tmp_path)
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    ckpt["params"]["device"] = "cuda"  # as if trained on a GPU machine
    save_checkpoint(tmp_path / "gpu.pt", {k: v for k, v in ckpt.items() if k != "format"})
    with caplog.at_level(logging.WARNING, logger="pyrovae"):
        est = load(tmp_path / "gpu.pt")
    assert "trained on cuda, not available here: using device auto" in caplog.text
    assert est.device_ == torch.device("cpu") and est.sample(2).shape == (2, 1, 8, 8)


def test_amp_needs_cuda(small_digits):
    with pytest.raises(ConfigError) as err:
        VAE(amp=True, device="cpu", **SMALL).fit(small_digits[0])
    assert str(err.value) == "amp (mixed precision) needs a CUDA device; got device 'cpu'"
    assert not amp_allowed("cpu") and not amp_allowed("mps") and amp_allowed("cuda:1")


def test_cli_amp_on_cpu_is_one_line(tmp_path, capsys):
    status = main(["train", "-o", str(tmp_path / "r"), "--amp", "--device", "cpu"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "needs a CUDA device" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_amp_with_auto_is_ignored_with_a_warning(small_digits, caplog):
    x, xv = small_digits
    with caplog.at_level(logging.WARNING, logger="pyrovae"):
        vae = VAE(amp=True, device="auto", epochs=1, **SMALL).fit(x, X_val=xv)
    assert "amp ignored: device auto resolved to cpu" in caplog.text
    assert vae.trainer_.amp is False


def test_autocast_networks_runs_bodies_in_bfloat16_and_returns_float32(small_digits):
    """The mechanism behind --amp, exercised with the CPU's bfloat16 autocast."""
    x, _ = small_digits
    vae = VAE(epochs=1, **SMALL).fit(x)
    module = vae.module_
    bodies = network_bodies(module)
    assert bodies == [module.encoder, module.decoder]
    seen = {}

    def record(name):
        def hook(mod, args, out):
            seen.setdefault(name, out.dtype)

        return hook

    def record_input(name):
        def hook(mod, args):
            seen.setdefault(name, args[0].dtype)

        return hook

    handles = [
        module.encoder.net[0].register_forward_hook(record("encoder linear")),
        module.decoder.net[0].register_forward_hook(record("decoder linear")),
        module.guide_head.register_forward_pre_hook(record_input("guide head input")),
        module.likelihood.register_forward_pre_hook(record_input("likelihood input")),
    ]
    objective = vae.trainer_.objective
    with pyro.validation_enabled(False):
        pyro.set_rng_seed(7)
        with autocast_networks(module, "cpu", torch.bfloat16):
            terms = objective(module.model, module.guide, x[:64])
        for h in handles:
            h.remove()
        pyro.set_rng_seed(7)  # the same Monte Carlo draws in float32
        ref = objective(module.model, module.guide, x[:64])
        pyro.set_rng_seed(7)
        again = objective(module.model, module.guide, x[:64])
    # inside the bodies bfloat16; what leaves them, into the guide head and the
    # likelihood, float32
    assert seen["encoder linear"] == seen["decoder linear"] == torch.bfloat16
    assert seen["guide head input"] == seen["likelihood input"] == torch.float32
    assert terms.loss.dtype == torch.float32 and terms.recon.dtype == torch.float32
    # reseeding reproduces the float32 loss exactly; with the same draws, bfloat16
    # differs from it by rounding only: less than bfloat16's unit roundoff 2^-8
    assert torch.equal(again.loss.detach(), ref.loss.detach())
    ratio = float(terms.loss.detach()) / float(ref.loss.detach())
    assert ratio != 1.0 and abs(ratio - 1) < 2**-8
    for body in bodies:  # hooks removed afterwards
        assert not body._forward_hooks and not body._forward_pre_hooks
    out = module.encoder(x[:4])
    assert out.dtype == torch.float32


def test_trainer_with_amp_trains_close_to_float32(small_digits):
    """Two epochs with the networks in bfloat16 (CPU autocast) reach nearly the same loss
    as float32 and leave float32 weights."""
    x, xv = small_digits

    def fit(amp):
        est = VAE(epochs=2, **SMALL)
        est.check_params()
        pyro.set_rng_seed(0)
        est.build(tuple(x.shape[1:]), "bernoulli")
        trainer = est.make_trainer(None, None)
        trainer.amp = amp
        return est.fit_with(trainer, x, xv)

    full, mixed = fit(False), fit(True)
    for a, b in zip(full.history_, mixed.history_, strict=True):
        assert abs(b["train_loss"] / a["train_loss"] - 1) < 0.02
    assert all(p.dtype == torch.float32 for p in mixed.module_.parameters())
    assert full.history_ != mixed.history_  # bfloat16 did change the numbers
