"""Mixed precision: the networks in bfloat16, everything probabilistic in float32.

With ``--amp`` the encoder and decoder bodies (the registered
:data:`~pyrovae.nets.ENCODERS` / :data:`~pyrovae.nets.DECODERS` modules, where
nearly all of a VAE's floating-point work is) run under
``torch.autocast(dtype=torch.bfloat16)``: their matrix multiplications and
convolutions take bfloat16 inputs and accumulate in float32 (Micikevicius et al.
2018; Kalamkar et al. 2019). Their outputs are cast back to float32 before they
leave the body, so the guide head, the reparameterized draw, the prior, the
likelihood's log-density, the KL terms and the loss are computed in float32, as
without ``--amp``. bfloat16 keeps float32's exponent range, so no loss scaling is
needed. Weights, gradients and optimizer state stay float32.

This is switched on only on CUDA (:func:`amp_allowed`); the mechanism itself works
for any device type that ``torch.autocast`` supports, which is how it is tested on
CPU.

References
----------
Micikevicius, P. et al. (2018). Mixed Precision Training. ICLR.
https://arxiv.org/abs/1710.03740
Kalamkar, D. et al. (2019). A Study of BFLOAT16 for Deep Learning Training.
https://arxiv.org/abs/1905.12322
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


def network_bodies(module: nn.Module) -> list[nn.Module]:
    """The outermost submodules of ``module`` that are registered encoder/decoder bodies."""
    from ..nets import DECODERS, ENCODERS

    classes = tuple({cls for _, cls in ENCODERS.items()} | {cls for _, cls in DECODERS.items()})
    found: list[nn.Module] = []
    inside: set[int] = set()
    for sub in module.modules():  # pre-order: a body comes before its submodules
        if isinstance(sub, classes) and id(sub) not in inside:
            found.append(sub)
            inside.update(id(m) for m in sub.modules())
    return found


def _to_float32(out):
    if isinstance(out, torch.Tensor):
        return out.float() if out.is_floating_point() else out
    if isinstance(out, tuple):
        return type(out)(_to_float32(o) for o in out)
    if isinstance(out, list):
        return [_to_float32(o) for o in out]
    if isinstance(out, dict):
        return {k: _to_float32(v) for k, v in out.items()}
    return out


@contextlib.contextmanager
def autocast_networks(
    module: nn.Module, device_type: str, dtype: torch.dtype = torch.bfloat16
) -> Iterator[list[nn.Module]]:
    """While active, ``module``'s network bodies run under ``torch.autocast(device_type,
    dtype)`` and return float32; everything else runs as usual. Yields the bodies."""
    bodies = network_bodies(module)
    handles = []
    stack: list = []

    def enter(mod, args):
        ctx = torch.autocast(device_type=device_type, dtype=dtype)
        ctx.__enter__()
        stack.append(ctx)

    def leave(mod, args, out):
        stack.pop().__exit__(None, None, None)
        return _to_float32(out)

    try:
        for body in bodies:
            handles.append(body.register_forward_pre_hook(enter))
            handles.append(body.register_forward_hook(leave, always_call=True))
        yield bodies
    finally:
        for h in handles:
            h.remove()
        while stack:  # only after an exception inside a body's forward
            stack.pop().__exit__(None, None, None)


def amp_allowed(device: str | torch.device) -> bool:
    """Whether ``--amp`` takes effect on ``device`` (CUDA only)."""
    return torch.device(device).type == "cuda"
