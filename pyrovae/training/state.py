"""Plain pieces of the trainer's state: an epoch's running sums, the position inside an
epoch, and the random-number streams."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..objectives import LossTerms
from . import distributed as D


class EpochSums:
    """Running sums of loss terms over an epoch (tensors: no per-step sync)."""

    def __init__(self) -> None:
        self.loss = 0.0
        self.recon = 0.0
        self.kl = 0.0
        self.n = 0

    def add(self, terms: LossTerms, n: int) -> None:
        self.loss = self.loss + terms.loss.detach()
        self.recon = self.recon + terms.recon.sum()
        self.kl = self.kl + terms.kl.sum()
        self.n += n

    def values(self, ctx: D.DistContext | None = None) -> list[float]:
        """``[loss, recon, kl, n]`` as floats, summed over ranks under ``ctx``."""
        out = [float(self.loss), float(self.recon), float(self.kl), float(self.n)]
        return D.sum_values(ctx, out) if ctx is not None else out

    def load(self, values: list[float]) -> None:
        self.loss, self.recon, self.kl = (float(v) for v in values[:3])
        self.n = int(values[3])

    def means(self, has_kl: bool, ctx: D.DistContext | None = None) -> dict[str, float]:
        """Per-data-point ``loss``, ``elbo`` (NaN without a KL term), ``recon``, ``kl``."""
        loss, recon, kl, n = self.values(ctx)
        n = max(n, 1)
        recon, kl = recon / n, kl / n
        return {
            "loss": loss / n,
            "elbo": recon - kl if has_kl else math.nan,
            "recon": recon,
            "kl": kl,
        }


@dataclass
class EpochPosition:
    """Where an unfinished epoch stands: the next step is step ``batch`` (0-based) of
    ``n_batches``; ``shuffle_start`` is the shuffling stream's state when the epoch
    began (it draws the epoch's permutation again), ``sums`` the running sums."""

    batch: int
    n_batches: int
    shuffle_start: torch.Tensor
    sums: EpochSums

    @property
    def unfinished(self) -> bool:
        return self.batch < self.n_batches


def rng_state(device: torch.device) -> dict:
    """torch's random-number state (and the device's, on CUDA)."""
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    """Restore :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def all_finite(tensors) -> bool:
    """Whether every floating-point tensor among ``tensors`` is finite."""
    return all(
        bool(torch.isfinite(t).all())
        for t in tensors
        if isinstance(t, torch.Tensor) and t.is_floating_point()
    )
