r"""The conditional VAE (Sohn, Lee & Yan 2015) as a Pyro program.

Model::

    for n in plate("data"):
        z_n ~ p(z | c_n)                  # scaled by beta
        x_n ~ p(x | decoder(z_n, c_n))    # observed

Guide::

    for n in plate("data"):
        z_n ~ q(z | encoder(x_n), c_n)    # scaled by beta

``c_n`` is the condition of row n, carried by the minibatch as ``Batch.y`` and coded as
a float vector (a class label one-hot, covariates as they are;
:mod:`pyrovae.models.conditions`). The decoder reads ``concat(z, c)``; the guide head
reads ``concat(encoder(x), c)``. p(z | c) is the conditional prior network
(``--prior conditional``, :class:`~pyrovae.priors.ConditionalNormalPrior`) or any
unconditional prior (p(z | c) = p(z)). As in the VAE, the latent site is wrapped in
``poutine.scale(scale=beta)`` in both programs. With a constant condition the model is
the VAE with the condition's columns of the first decoder and guide-head layers folded
into their biases.

References
----------
Sohn, K., Lee, H. & Yan, X. (2015). Learning structured output representation using
deep conditional generative models. NeurIPS.
"""

from __future__ import annotations

from collections.abc import Callable

import pyro
import torch
from pyro import poutine
from pyro.distributions import Distribution

from .. import sites
from ..data.batch import Batch, as_batch
from ..errors import ConfigError
from ..nets import DECODERS
from . import MODELS
from .base import LatentModule, ModuleSpec, _net_options
from .conditions import Condition, make_condition


@MODELS.register("cvae")
class CVAEModule(LatentModule):
    """Conditional VAE: p(z | c) p(x | z, c) with guide q(z | x, c).

    Parameters
    ----------
    spec : ModuleSpec
        Components and sizes; ``spec.model_options`` holds ``condition`` (``"label"``
        or ``"covariates"``, default ``"covariates"``) and ``condition_dim`` (the number
        of classes, or of covariates; default 1).
    """

    def __init__(self, spec: ModuleSpec) -> None:
        super().__init__(spec)
        opts = dict(spec.model_options or {})
        unknown = set(opts) - {"condition", "condition_dim"}
        if unknown:
            raise ConfigError(f"the cvae model has no option {sorted(unknown)[0]!r}")
        self.condition: Condition = make_condition(
            opts.get("condition", "covariates"), opts.get("condition_dim", 1)
        )
        self.condition_dim = self.condition.width
        net_kw = {"hidden": tuple(spec.hidden), "activation": spec.activation}
        self.decoder = DECODERS.get(spec.net)(
            self.latent_dim + self.condition_dim,
            self.data_shape,
            self.likelihood.param_channels,
            **net_kw,
            **_net_options(spec),
        )
        self._build_prior_and_guide(
            self.latent_dim, guide_features=self.encoder.out_features + self.condition_dim
        )

    @property
    def has_latent_sites(self) -> bool:
        return True

    def build_decoder_weights(self, options: dict) -> None:
        """Refused: the cvae family has no Bayesian decoder (its decoder reads z and c)."""
        if options:
            raise ConfigError(
                "bayesian_decoder is available for the vae and hvae families, not cvae"
            )
        return None

    def prior_program(self, prefix: str) -> torch.Tensor:
        """Refused: a decoder prior (:func:`pyrovae.prior_module`) draws a code from p(z)
        alone, and the cvae decoder also reads a condition."""
        raise ConfigError(
            "prior_module needs an unconditional family (vae, hvae); the cvae decoder also "
            "reads a condition"
        )

    def targets(self, y) -> torch.Tensor:
        """``y`` checked against the model's condition and encoded for ``Batch.y``:
        class indices (int64) for a label, float rows ``(N, width)`` for covariates."""
        return self.condition.targets(y)

    # -- the condition -------------------------------------------------------
    def code(self, data) -> torch.Tensor:
        """The float condition code ``(B, width)`` of a batch (or of encoded targets)."""
        y = as_batch(data).y if isinstance(data, Batch) else data
        if y is None:
            raise ConfigError(
                "the cvae model needs the condition of every row: pass y (labels or "
                "covariates) with the data"
            )
        return self.condition.code(y)

    def prior_given(self, c: torch.Tensor) -> Distribution:
        """p(z | c) for codes ``c`` ``(B, width)``: batch shape ``(B,)`` for a conditional
        prior, ``()`` (broadcast by the data plate) for an unconditional one."""
        return self.prior(c) if self.prior.conditional else self.prior()

    def decode_given(self, z: torch.Tensor, c: torch.Tensor) -> Distribution:
        """p(x | z, c) for codes ``z`` ``(..., B, latent_dim)`` and condition codes ``c``
        ``(B, width)`` (broadcast over the leading dimensions of ``z``)."""
        c = c.to(z.dtype).expand(*z.shape[:-1], c.shape[-1])
        return self.likelihood(self.decoder(torch.cat([z, c], -1)))

    # -- Pyro programs -------------------------------------------------------
    def model(self, batch: Batch, beta: float = 1.0) -> None:
        """p(z | c) p(x | z, c) over a minibatch; z scaled by ``beta``; with an observation
        mask, p(x_obs | z, c) over the observed entries only."""
        batch = as_batch(batch)
        x = self.observed(batch)
        c = self.code(batch)
        with pyro.plate(sites.DATA_PLATE, x.shape[0]):
            with poutine.scale(scale=beta):
                z = pyro.sample(sites.LATENT, self.prior_given(c))
            pyro.sample(sites.OBS, self.observe(self.decode_given(z, c), batch.mask), obs=x)

    def guide(self, batch: Batch, beta: float = 1.0) -> None:
        """q(z | x, c) (reading the observed entries); scaled by ``beta``."""
        batch = as_batch(batch)
        x = self.observed(batch)
        with pyro.plate(sites.DATA_PLATE, x.shape[0]):
            with poutine.scale(scale=beta):
                pyro.sample(sites.LATENT, self.encode(batch))

    def direct_log_weights(
        self, x, mask: torch.Tensor | None = None
    ) -> Callable[[int], torch.Tensor]:
        """log p(x | z, c) + log p(z | c) - log q(z | x, c) of ``k`` draws per row of the
        batch ``x`` (data with conditions; observed where ``mask`` is ``True``), shape
        ``(k, B)``; see :meth:`LatentModule.direct_log_weights`."""
        self._direct_form()
        batch = as_batch(x)
        if mask is not None:
            batch = batch.replace(mask=mask)
        data = self.observed(batch)
        c = self.code(batch)
        q = self.encode(batch)
        prior = self.prior_given(c)
        draw = q.rsample if q.has_rsample else q.sample

        def log_weights(k: int) -> torch.Tensor:
            z = draw((int(k),))
            px = self.observe(self.decode_given(z, c), batch.mask)
            return px.log_prob(data) + prior.log_prob(z) - q.log_prob(z)

        return log_weights

    def _direct_form(self) -> None:
        if type(self).model is not CVAEModule.model or type(self).guide is not CVAEModule.guide:
            raise NotImplementedError(
                f"{type(self).__name__} replaces the CVAE's model or guide, "
                "which only their traces describe"
            )

    def direct_elbo_terms(self, batch: Batch, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
        """``(recon, kl)`` of one draw z ~ q(z | x, c) per row, as the traces of
        :meth:`model` and :meth:`guide` give them (see
        :meth:`LatentModule.direct_elbo_terms`); needs a reparameterizable guide."""
        self._direct_form()
        batch = as_batch(batch)
        x = self.observed(batch)
        c = self.code(batch)
        q = self.encode(batch)
        if not q.has_rsample:
            raise NotImplementedError("the guide's distribution has no reparameterized draws")
        z = q.rsample()
        recon = self.observe(self.decode_given(z, c), batch.mask).log_prob(x)
        return recon, q.log_prob(z) - self.prior_given(c).log_prob(z)

    # -- deterministic helpers -------------------------------------------------
    def encode(self, x, mask: torch.Tensor | None = None) -> Distribution:
        """q(z | x, c) of a batch with conditions (reading the entries where ``mask``, or
        the batch's own mask, is ``True``): batch shape ``(B,)``, event shape
        ``(latent_dim,)``."""
        batch = as_batch(x)
        c = self.code(batch)
        features = self.features(batch.x, batch.mask if mask is None else mask)
        return self.guide_head(torch.cat([features, c.to(features.dtype)], -1))

    def prior_encode(self, x: torch.Tensor) -> Distribution:
        raise ConfigError(
            "the cvae's guide reads a condition, so a prior built from the guide (vamp) "
            "has no components; use another prior"
        )

    def decode(self, z: torch.Tensor, y=None) -> Distribution:
        """p(x | z, c) for codes ``z`` ``(..., B, latent_dim)`` and encoded conditions
        ``y`` (one per row of ``z``'s last batch dimension)."""
        return self.decode_given(z, self.code(y))

    def guide_input(self, batch: Batch):
        """The whole batch: q(z | x, c) reads the rows' conditions too."""
        return as_batch(batch)

    def decode_rows(self, z: torch.Tensor, data) -> Distribution:
        """p(x | z, c) for draws ``z`` ``(..., B, latent_dim)`` of the rows of the batch
        ``data``, given their conditions."""
        return self.decode_given(z, self.code(as_batch(data)))

    def prior_distribution(self) -> Distribution:
        """p(z) for an unconditional prior; a conditional one has no single p(z)."""
        if self.prior.conditional:
            raise ConfigError("the conditional prior has no distribution without a condition")
        return self.prior()

    def sample_latent(self, n: int, y=None) -> torch.Tensor:
        """``n`` draws from p(z | c) for encoded conditions ``y`` (``n`` rows)."""
        c = self.code(y)
        d = self.prior_given(c)
        return d.sample() if self.prior.conditional else d.sample((int(n),))
