"""The deterministic baselines: :class:`AE` and the denoising :class:`DAE`."""

from __future__ import annotations

import math
from typing import Any

import torch

from ..data.batch import as_batch
from .base import ESTIMATORS, Estimator


@ESTIMATORS.register("ae")
class AE(Estimator):
    """Deterministic autoencoder baseline: point codes, reconstruction loss -log p(x|z).

    After fitting, a Gaussian is fitted to the training codes so that
    :meth:`sample` can generate (ex-post density estimation).
    """

    family = "ae"

    def evaluate(self, x, particles: int = 1, *, y=None) -> dict[str, float]:
        """As :meth:`Estimator.evaluate`; an autoencoder has no ELBO (``elbo`` is NaN)
        and its ``recon`` is the reconstruction log-likelihood at the code."""
        out = super().evaluate(x, particles, y=y)
        out["elbo"] = out["elbo_se"] = math.nan
        return out

    def score(self, X, y=None) -> float:
        """Mean reconstruction log-likelihood per data point (nats)."""
        return self.evaluate(X)["recon"]

    def _after_fit(self, x) -> None:
        data = as_batch(x)  # a batch with an observation mask when trained with one
        with torch.no_grad():
            self.module_.eval()
            codes = torch.cat(
                [
                    self.module_.encode(part.x, part.mask).mean
                    for part in (data[i : i + 1024] for i in range(0, len(data), 1024))
                ]
            )
            self.module_.fit_code_distribution(codes)


@ESTIMATORS.register("dae")
class DAE(AE):
    """Denoising autoencoder baseline (Vincent et al. 2008).

    Parameters
    ----------
    noise : float
        Corruption level: masking probability or Gaussian noise sd.
    corruption : str
        "mask" or "gaussian".
    **kwargs
        The shared parameters of :class:`Estimator`.
    """

    family = "dae"

    def __init__(self, *, noise: float = 0.25, corruption: str = "mask", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.noise = noise
        self.corruption = corruption

    def _spec_kwargs(self) -> dict[str, Any]:
        return {"model_options": {"noise": self.noise, "corruption": self.corruption}}
