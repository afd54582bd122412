r"""The semi-supervised M2 model (Kingma, Rezende, Mohamed & Welling 2014) as a Pyro program.

Model, for the rows of a minibatch, labelled (y_n given) or not::

    for n in plate("data"):
        y_n ~ Cat(pi)                    # pi uniform; observed where labelled
        z_n ~ p(z)                       # the registered prior; scaled by beta
        x_n ~ p(x | decoder(z_n, y_n))   # the decoder reads concat(z, onehot(y))

Guide::

    for n in plate("data"):
        y_n ~ q(y | x_n)                 # a classifier; enumerated where unlabelled
        z_n ~ q(z | encoder(x_n), y_n)   # the guide head reads concat(features, onehot(y))

Labelled and unlabelled rows share a minibatch. The label is split into two sites, as
``pyro.sample(..., obs=y, obs_mask=labelled)`` does: ``sites.LABEL`` observed under
``poutine.mask(labelled)`` and ``sites.LABEL_LATENT`` latent under
``poutine.mask(~labelled)``. The guide's ``sites.LABEL_LATENT`` is enumerated in
parallel (``infer={"enumerate": "parallel"}``, what ``config_enumerate`` sets) and
:class:`~pyrovae.objectives.enum.EnumELBO` (``TraceEnum_ELBO``) sums it out: z, the
decoder and the likelihood are computed once for all classes and rows, a ``(C, B)``
batch. For a labelled row the guide's distribution of that site is a point mass at the
observed class (logits :data:`POINT_MASS_LOGIT` elsewhere: probability exactly 0 in
float32 and float64), so the enumerated sum keeps only the observed class and the row's
ELBO is the supervised one, log p(x|y,z) + log p(y) + log p(z) - log q(z|x,y); an
unlabelled row's is the marginal over y, E_q(y|x)[log p(x,y,z) - log q(z|x,y)] + H(q(y|x))
(the paper's eqs. 6 and 7).

The classifier q(y|x) receives gradient from the unlabelled rows only through that sum;
the paper adds alpha E_labelled[log q(y|x)] to the objective (eq. 9, alpha = 0.1 N). Here
the model adds the factor ``sites.LABEL_AUX`` = ``aux_scale * log q(y_n|x_n)`` on the
labelled rows while the module is in training mode (not in evaluation: validation losses
and reported ELBOs are ELBOs). In pyrovae's per-data-point loss (the minibatch sum over
its B rows divided by B, :mod:`pyrovae.data.batch`), the paper's term alpha / L
sum_labelled log q over N data points becomes, per labelled row, a weight
``aux_scale = alpha / L = aux_weight * N / L`` with ``aux_weight = alpha / N`` (0.1 in the
paper) and L the labelled rows among the N training rows: then the expected minibatch
loss is (J + alpha E_labelled[-log q(y|x)]) / N, the paper's J^alpha per data point. The
estimator sets ``aux_scale`` from the training labels (a buffer: it travels with the
weights).

The guide's joint posterior over z (:class:`~pyrovae.models.base.GuidePosterior`) treats y
marginally: q(z|x) = sum_y q(y|x) q(z|x,y) (:meth:`M2Module.encode`, a mixture), and
p(x|z) without a label (:meth:`M2Module.decode`) is sum_y pi_y p(x|y,z). The
importance-sampled log p(x) sums y exactly (:meth:`M2Module.direct_log_weights`).

References
----------
Kingma, D. P., Rezende, D. J., Mohamed, S. & Welling, M. (2014). Semi-supervised learning
with deep generative models. NeurIPS.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions import Distribution
from torch import nn
from torch.nn import functional as F

from .. import sites
from ..data.batch import Batch, as_batch
from ..errors import ConfigError, DataError
from ..nets import DECODERS, ENCODERS
from . import MODELS
from .base import LatentModule, ModuleSpec

#: Logit of the classes other than the observed one in a labelled row's guide: exp of it
#: underflows to exactly 0 (the enumerated sum drops those classes), and it stays finite.
POINT_MASS_LOGIT = -1e4


def one_hot_concat(t: torch.Tensor, y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """``concat(t, onehot(y))`` on the last dim, ``t`` ``(..., d)`` and ``y`` ``(...)``
    broadcast against each other's batch dims."""
    code = F.one_hot(y, n_classes).to(t.dtype)
    shape = torch.broadcast_shapes(t.shape[:-1], code.shape[:-1])
    return torch.cat([t.expand(*shape, t.shape[-1]), code.expand(*shape, n_classes)], -1)


@MODELS.register("m2")
class M2Module(LatentModule):
    """M2: classifier q(y|x), guide q(z|x,y), decoder p(x|y,z) (see the module docstring).

    Parameters
    ----------
    spec : ModuleSpec
        Components and sizes; ``spec.model_options["n_classes"]`` (at least 2) is the
        number of classes. The classifier is the encoder body of ``spec.net`` with the
        same hidden widths, then a linear layer to the class logits.
    """

    mean_field = False
    elbo_objective = "enum"

    def __init__(self, spec: ModuleSpec) -> None:
        super().__init__(spec)
        options = dict(spec.model_options)
        unknown = set(options) - {"n_classes"}
        if unknown:
            raise ConfigError(f"unknown m2 model options: {', '.join(sorted(unknown))}")
        n = options.get("n_classes")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
            raise ConfigError(f"the m2 model needs n_classes >= 2; got {n!r}")
        self.n_classes = int(n)
        net_kw = {"hidden": tuple(spec.hidden), "activation": spec.activation}
        self.decoder = DECODERS.get(spec.net)(
            self.latent_dim + self.n_classes,
            self.data_shape,
            self.likelihood.param_channels,
            **net_kw,
        )
        body = ENCODERS.get(spec.net)(self.data_shape, **net_kw)
        self.classifier = nn.Sequential(body, nn.Linear(body.out_features, self.n_classes))
        self._build_prior_and_guide(
            self.latent_dim, guide_features=self.encoder.out_features + self.n_classes
        )
        self.register_buffer("aux_scale", torch.zeros(()))

    @property
    def has_latent_sites(self) -> bool:
        return True

    def prior_program(self, prefix: str) -> torch.Tensor:
        """Refused: a decoder prior (:func:`pyrovae.prior_module`) draws a code from p(z)
        alone, and the m2 decoder also reads a label."""
        raise ConfigError(
            "prior_module needs an unconditional family (vae, hvae); the m2 decoder also "
            "reads a label"
        )

    def build_decoder_weights(self, options: dict) -> None:
        """Refused: the m2 family has no Bayesian decoder (its decoder reads z and y)."""
        if options:
            raise ConfigError("bayesian_decoder is available for the vae and hvae families, not m2")
        return None

    # -- labels --------------------------------------------------------------------------
    def targets(self, y) -> torch.Tensor:
        """Class indices ``0 .. n_classes - 1`` per row, ``-1`` for an unlabelled row
        (scikit-learn's semi-supervised convention), as a long tensor."""
        t = label_indices(y)
        if bool((t >= self.n_classes).any()):
            raise DataError(
                f"labels must be class indices 0..{self.n_classes - 1} or -1 (unlabelled); "
                f"got {int(t[t >= self.n_classes][0])}"
            )
        return t

    def observed(self, batch: Batch | torch.Tensor) -> torch.Tensor:
        """The data ``x`` of ``batch``; a batch with an observation mask (missing entries)
        is refused with one line: M2 scores every entry."""
        batch = as_batch(batch)
        if batch.mask is not None:
            raise ConfigError(
                "the m2 model does not take observation masks (missing entries); pass complete rows"
            )
        return batch.x

    def _labels(self, batch: Batch, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(class index, 0 where unlabelled; labelled mask), each ``(B,)``."""
        if batch.y is None:
            rows = x.shape[0]
            return (
                torch.zeros(rows, dtype=torch.long, device=x.device),
                torch.zeros(rows, dtype=torch.bool, device=x.device),
            )
        y = batch.y.long()
        labelled = y >= 0
        return y.clamp(min=0), labelled

    def label_prior(self) -> Distribution:
        """p(y) = Cat(pi), pi uniform over the classes."""
        return dist.Categorical(logits=self.aux_scale.new_zeros(self.n_classes))

    def classify(self, x: torch.Tensor) -> Distribution:
        """q(y|x): a Categorical with batch shape ``(B,)``."""
        return dist.Categorical(logits=self.classifier(x))

    # -- Pyro programs -------------------------------------------------------------------
    def model(self, batch: Batch, beta: float = 1.0) -> None:
        """p(y) p(z) p(x|y,z); y observed on the labelled rows; z scaled by ``beta``; the
        auxiliary classification factor on the labelled rows in training mode."""
        batch = as_batch(batch)
        x = self.observed(batch)
        y, labelled = self._labels(batch, x)
        prior_y = self.label_prior()
        with pyro.plate(sites.DATA_PLATE, x.shape[0]):
            with poutine.mask(mask=labelled):
                pyro.sample(sites.LABEL, prior_y, obs=y)
            with poutine.mask(mask=~labelled):
                y_latent = pyro.sample(sites.LABEL_LATENT, prior_y)
            y_all = torch.where(labelled, y, y_latent)
            with poutine.scale(scale=beta):
                z = pyro.sample(sites.LATENT, self.prior())
            pyro.sample(sites.OBS, self.decode(z, y_all), obs=x)
            if self.training and bool(labelled.any()) and float(self.aux_scale) > 0:
                log_q = self.classify(x).log_prob(y)
                pyro.factor(sites.LABEL_AUX, self.aux_scale * torch.where(labelled, log_q, 0.0))

    def guide(self, batch: Batch, beta: float = 1.0) -> None:
        """q(y|x) (a point mass at the label where there is one; enumerated elsewhere) and
        q(z|x,y), scaled by ``beta``."""
        batch = as_batch(batch)
        x = self.observed(batch)
        y, labelled = self._labels(batch, x)
        logits = self.classifier(x)
        point = torch.full_like(logits, POINT_MASS_LOGIT).scatter(-1, y[:, None], 0.0)
        logits = torch.where(labelled[:, None], point, logits)
        features = self.encoder(x)
        with pyro.plate(sites.DATA_PLATE, x.shape[0]):
            y_latent = pyro.sample(
                sites.LABEL_LATENT,
                dist.Categorical(logits=logits),
                infer={"enumerate": "parallel"},
            )
            y_all = torch.where(labelled, y, y_latent)
            with poutine.scale(scale=beta):
                pyro.sample(sites.LATENT, self.encode_given(features, y_all))

    # -- deterministic helpers -----------------------------------------------------------
    def encode_given(self, features: torch.Tensor, y: torch.Tensor) -> Distribution:
        """q(z|x,y) from the encoder's ``features`` of x and class indices ``y``
        (broadcasting: ``y`` of shape ``(C, 1)`` gives a ``(C, B)`` batch)."""
        return self.guide_head(one_hot_concat(features, y, self.n_classes))

    def _per_class(self, x: torch.Tensor) -> Distribution:
        """q(z|x,y) for every class: batch shape ``(B, C)``."""
        classes = torch.arange(self.n_classes, device=x.device)
        features = self.encoder(x)[:, None, :]
        return self.encode_given(features, classes[None, :].expand(x.shape[0], -1))

    def encode(self, x: torch.Tensor) -> Distribution:
        """q(z|x) = sum_y q(y|x) q(z|x,y): a mixture with batch shape ``(B,)``, event shape
        ``(latent_dim,)`` (its ``mean`` and ``stddev`` are the mixture's)."""
        weights = dist.Categorical(logits=self.classifier(x))
        return dist.MixtureSameFamily(weights, self._per_class(x))

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> Distribution:
        """p(x|y,z) for codes ``z`` ``(..., latent_dim)`` and class indices ``y``; without
        ``y``, the marginal p(x|z) = sum_y pi_y p(x|y,z) (a mixture over the classes)."""
        if y is not None:
            return self.likelihood(self.decoder(one_hot_concat(z, y, self.n_classes)))
        classes = torch.arange(self.n_classes, device=z.device)
        codes = one_hot_concat(z[..., None, :], classes, self.n_classes)
        per_class = self.likelihood(self.decoder(codes))
        weights = dist.Categorical(logits=z.new_zeros(z.shape[:-1] + (self.n_classes,)))
        return dist.MixtureSameFamily(weights, per_class)

    def prior_distribution(self) -> Distribution:
        """p(z) with event shape ``(latent_dim,)``."""
        return self.prior()

    def sample_latent(self, n: int) -> torch.Tensor:
        """n draws of z from the prior."""
        return self.prior_distribution().sample((n,))

    def direct_log_weights(self, x: torch.Tensor) -> Callable[[int], torch.Tensor]:
        """Log-weights with y summed out exactly: for each of ``k`` draws, one z_y ~
        q(z|x,y) per class and log sum_y pi_y p(x|y,z_y) p(z_y) / q(z_y|x,y), shape
        ``(k, B)``. Its exponential has expectation sum_y pi_y p(x|y) = p(x), so the
        importance-sampled log p(x) sums over y exactly and samples only z."""
        q = self._per_class(x)  # (B, C)
        prior = self.prior()
        log_pi = self.label_prior().logits  # (C,)
        classes = torch.arange(self.n_classes, device=x.device)
        draw = q.rsample if q.has_rsample else q.sample

        def log_weights(k: int) -> torch.Tensor:
            z = draw((int(k),))  # (k, B, C, d)
            px = self.decode(z, classes)
            lw = px.log_prob(x[:, None]) + prior.log_prob(z) - q.log_prob(z)
            return torch.logsumexp(lw + log_pi, dim=-1)

        return log_weights


def label_indices(y) -> torch.Tensor:
    """``y`` as a long tensor of class indices, one per row, -1 for unlabelled rows; a
    one-line :class:`DataError` for anything else (strings, fractions, -2)."""
    try:
        t = y if torch.is_tensor(y) else torch.as_tensor(np.asarray(y))
    except (TypeError, ValueError, RuntimeError):
        raise DataError("labels must be integer class indices (-1: unlabelled)") from None
    if t.dtype == torch.bool or t.is_complex() or t.dim() == 0:
        raise DataError("labels must be integer class indices (-1: unlabelled), one per row")
    if t.dtype.is_floating_point:
        if not bool(torch.isfinite(t).all()) or bool((t != t.round()).any()):
            raise DataError("labels must be integer class indices (-1: unlabelled)")
    t = t.reshape(t.shape[0], -1)
    if t.shape[1] != 1:
        raise DataError(f"labels must be one class index per row; got shape {tuple(t.shape)}")
    t = t[:, 0].long()
    if bool((t < -1).any()):
        raise DataError(
            f"labels must be class indices >= 0 or -1 (unlabelled); got {int(t[t < -1][0])}"
        )
    return t


def aux_scale(aux_weight: float, n_rows: int, n_labelled: int) -> float:
    """The per-labelled-row weight alpha / L = ``aux_weight * N / L`` of the auxiliary
    term (module docstring); 0 without labelled rows."""
    if n_labelled <= 0:
        return 0.0
    return float(aux_weight) * float(n_rows) / float(n_labelled)
