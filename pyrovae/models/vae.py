r"""The variational autoencoder as a Pyro program.

Model (Kingma & Welling 2014; Rezende et al. 2014)::

    for n in plate("data"):
        z_n ~ p(z)                 # scaled by beta
        x_n ~ p(x | decoder(z_n))  # observed

Guide::

    for n in plate("data"):
        z_n ~ q(z | encoder(x_n))  # scaled by beta

The latent site is wrapped in ``poutine.scale(scale=beta)`` in *both* the model
and the guide (``beta`` is the programs' keyword argument, passed by the objective
from the schedule; 1 outside training), so that ``Trace_ELBO`` estimates
E_q[log p(x|z)] - beta KL(q(z|x) || p(z)) (the beta-VAE objective of Higgins
et al. 2017), and ``TraceMeanField_ELBO`` (which scales its analytic KL by the
guide site's scale) computes the same objective.
"""

from __future__ import annotations

from collections.abc import Callable

import pyro
import torch
from pyro import poutine
from pyro.distributions import Distribution

from .. import sites
from ..data.batch import Batch, as_batch
from . import MODELS
from .base import LatentModule, ModuleSpec


@MODELS.register("vae")
class VAEModule(LatentModule):
    """VAE: prior, amortized guide, decoder and likelihood.

    Parameters
    ----------
    spec : ModuleSpec
        Components and sizes. ``spec.prior`` and ``spec.guide`` name entries
        of :data:`~pyrovae.priors.PRIORS` and :data:`~pyrovae.guides.GUIDES`
        (or are objects).
    """

    def __init__(self, spec: ModuleSpec) -> None:
        super().__init__(spec)
        self._build_prior_and_guide(self.latent_dim)

    @property
    def has_latent_sites(self) -> bool:
        return True

    def model(self, batch: Batch, beta: float = 1.0) -> None:
        """p(z) p(x|z) over a minibatch of rows ``(B, *data_shape)``; z scaled by ``beta``;
        with an observation mask, p(x_obs|z) over the observed entries only."""
        batch = as_batch(batch)
        x = self.observed(batch)
        with self.weight_sites(batch, beta), pyro.plate(sites.DATA_PLATE, x.shape[0]):
            with poutine.scale(scale=beta):
                z = pyro.sample(sites.LATENT, self.prior())
            pyro.sample(sites.OBS, self.observe(self.decode(z), batch.mask), obs=x)

    def guide(self, batch: Batch, beta: float = 1.0) -> None:
        """q(z|x), amortized by the encoder (reading the observed entries); scaled by
        ``beta``."""
        batch = as_batch(batch)
        x = self.observed(batch)
        with self.weight_sites(batch, beta, guide=True), pyro.plate(sites.DATA_PLATE, x.shape[0]):
            with poutine.scale(scale=beta):
                pyro.sample(sites.LATENT, self.encode(x, mask=batch.mask))

    def direct_log_weights(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> Callable[[int], torch.Tensor]:
        """log p(x|z) + log p(z) - log q(z|x) of ``k`` draws z ~ q(z|x), shape ``(k, B)``, as
        a function of ``k`` (see :meth:`LatentModule.direct_log_weights`): the encoder and
        the prior run once; each call draws z as the guide's site does (``rsample`` where
        the guide has it), decodes it and scores it under the three distributions. With
        ``mask``, log p(x_obs|z) over the observed entries and q(z|x_obs, mask)."""
        self._direct_form()
        q = self.encode(x, mask=mask)
        prior = self.prior()
        draw = q.rsample if q.has_rsample else q.sample
        if mask is not None:
            x = self.observed(Batch(x, mask=mask))

        def log_weights(k: int) -> torch.Tensor:
            z = draw((int(k),))
            px = self.observe(self.decode(z), mask)
            return px.log_prob(x) + prior.log_prob(z) - q.log_prob(z)

        return log_weights

    def _direct_form(self) -> None:
        if type(self).model is not VAEModule.model or type(self).guide is not VAEModule.guide:
            raise NotImplementedError(
                f"{type(self).__name__} replaces the VAE's model or guide, "
                "which only their traces describe"
            )
        if self.decoder_weights is not None and not self.decoder_weights.is_fixed:
            raise NotImplementedError(
                "the decoder weights are random (global sites): the direct form holds only "
                "given a θ (DecoderWeights.fixed)"
            )

    def direct_elbo_terms(self, batch: Batch, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
        """``(recon, kl)`` of one draw z ~ q(z|x) per row, as the traces of :meth:`model` and
        :meth:`guide` give them (see :meth:`LatentModule.direct_elbo_terms`); needs a
        reparameterizable guide (``Trace_ELBO`` adds score-function terms otherwise). With
        an observation mask, recon is log p(x_obs|z) and q reads the mask, as in the traces.
        Not for a Bayesian decoder, even at a fixed θ: the objective keeps the route its
        first call chose for every later call of the same shapes, and the weight sites come
        and go with :meth:`~pyrovae.models.bayesian.DecoderWeights.fixed`."""
        self._direct_form()
        if self.decoder_weights is not None:
            raise NotImplementedError("the decoder weights are random (global sites)")
        x = self.observed(batch)
        q = self.encode(x, mask=batch.mask)
        if not q.has_rsample:
            raise NotImplementedError("the guide's distribution has no reparameterized draws")
        z = q.rsample()
        recon = self.observe(self.decode(z), batch.mask).log_prob(x)
        return recon, q.log_prob(z) - self.prior().log_prob(z)

    def encode(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> Distribution:
        """q(z|x) (reading the entries where ``mask`` is ``True``; ``None``: all): batch
        shape ``(B,)``, event shape ``(latent_dim,)``."""
        return self.guide_head(self.features(x, mask))

    def prior_distribution(self) -> Distribution:
        """p(z) with event shape ``(latent_dim,)``."""
        return self.prior()

    def prior_program(self, prefix: str) -> torch.Tensor:
        """z ~ p(z) at the site ``f"{prefix}_z"`` (see :meth:`LatentModule.prior_program`)."""
        return pyro.sample(f"{prefix}_{sites.LATENT}", self.prior_distribution())

    def sample_latent(self, n: int) -> torch.Tensor:
        """n draws from the prior."""
        return self.prior_distribution().sample((n,))
