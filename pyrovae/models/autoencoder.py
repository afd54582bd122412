r"""Frequentist baselines: the deterministic and the denoising autoencoder.

Both are Pyro programs with *no* latent sample site: the code
z = W h(x) + b is a point estimate (recorded as a deterministic site) and the
guide is empty, so ``Trace_ELBO`` reduces to the reconstruction loss
-log p(x | decoder(z)) under the same likelihood the VAE uses (binary
cross-entropy for Bernoulli, scaled squared error for a fixed-scale Gaussian).
They share the networks, the objective code and the trainer with the VAE.

The denoising autoencoder (Vincent et al. 2008) encodes a corrupted copy
x~ ~ C(x~|x) during training and reconstructs the clean x. Corruptions are
registered in :data:`CORRUPTIONS` ("mask": zero each entry with probability
``noise``; "gaussian": add N(0, noise^2)).

To generate from an autoencoder, pyrovae fits a Gaussian to the training codes
after training ("ex-post density estimation", Ghosh et al. 2020) and decodes
draws from it.
"""

from __future__ import annotations

import pyro
import torch
from pyro.distributions import Delta, Distribution
from torch import nn

from .. import sites
from ..data.batch import Batch, as_batch
from ..errors import ConfigError
from ..registry import Registry
from . import MODELS
from .base import LatentModule, ModuleSpec

CORRUPTIONS: Registry = Registry("corruption")


@CORRUPTIONS.register("mask")
def mask_noise(x: torch.Tensor, noise: float) -> torch.Tensor:
    """Zero each entry independently with probability ``noise``."""
    return x * (torch.rand_like(x) >= noise)


@CORRUPTIONS.register("gaussian")
def gaussian_noise(x: torch.Tensor, noise: float) -> torch.Tensor:
    """Add independent N(0, noise^2) noise."""
    return x + noise * torch.randn_like(x)


@MODELS.register("ae")
class AEModule(LatentModule):
    """Deterministic autoencoder: z = code(encoder(x)), x ~ p(x | decoder(z))."""

    def __init__(self, spec: ModuleSpec) -> None:
        super().__init__(spec)
        self.code = nn.Linear(self.encoder.out_features, self.latent_dim)
        # Gaussian fitted to training codes after fit (for sampling); identity until then.
        self.register_buffer("code_loc", torch.zeros(self.latent_dim))
        self.register_buffer("code_scale_tril", torch.eye(self.latent_dim))

    def build_decoder_weights(self, options: dict) -> None:
        """Refused: an autoencoder has no latent variables to put the weights beside."""
        if options:
            raise ConfigError(
                f"bayesian_decoder needs a model with latent variables (vae, hvae); "
                f"the {type(self).__name__} is an autoencoder"
            )
        return None

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        """Input seen by the encoder (identity for the plain autoencoder)."""
        return x

    def model(self, batch: Batch, beta: float = 1.0) -> None:
        """p(x | decoder(code(x))); ``beta`` is ignored (no latent site to weight). With
        an observation mask the code reads the observed entries and the reconstruction
        loss counts them only."""
        batch = as_batch(batch)
        x = self.observed(batch)
        with pyro.plate(sites.DATA_PLATE, x.shape[0]):
            x_in = self.corrupt(x) if self.training else x
            z = pyro.deterministic(
                sites.CODE, self.code(self.features(x_in, batch.mask)), event_dim=1
            )
            pyro.sample(sites.OBS, self.observe(self.decode(z), batch.mask), obs=x)

    def guide(self, batch: Batch, beta: float = 1.0) -> None:
        """Empty: an autoencoder has no latent random variables."""

    def encode(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> Distribution:
        """The point code as a Delta distribution (mean = code, stddev = 0)."""
        return Delta(self.code(self.features(x, mask)), event_dim=1)

    def fit_code_distribution(self, codes: torch.Tensor) -> None:
        """Fit N(mean, cov) to training codes, used by :meth:`sample_latent`."""
        loc = codes.mean(0)
        cov = torch.cov(codes.T).reshape(self.latent_dim, self.latent_dim)
        cov = cov + 1e-5 * torch.eye(self.latent_dim, dtype=cov.dtype, device=cov.device)
        self.code_loc.copy_(loc)
        self.code_scale_tril.copy_(torch.linalg.cholesky(cov))

    def sample_latent(self, n: int) -> torch.Tensor:
        eps = torch.randn(n, self.latent_dim, device=self.code_loc.device)
        return self.code_loc + eps @ self.code_scale_tril.T


@MODELS.register("dae")
class DAEModule(AEModule):
    """Denoising autoencoder: encode a corrupted x, reconstruct the clean x.

    ``spec.model_options`` may set ``corruption`` (name in :data:`CORRUPTIONS`,
    default "mask") and ``noise`` (default 0.25).
    """

    def __init__(self, spec: ModuleSpec) -> None:
        super().__init__(spec)
        opts = dict(spec.model_options)
        self.corruption_name = opts.pop("corruption", "mask")
        self._corruption = CORRUPTIONS.get(self.corruption_name)
        self.noise = float(opts.pop("noise", 0.25))
        if opts:
            raise ConfigError(f"unknown dae option(s): {', '.join(sorted(opts))}")
        if not self.noise >= 0:
            raise ConfigError(f"dae noise must be >= 0; got {self.noise}")

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        return self._corruption(x, self.noise)
