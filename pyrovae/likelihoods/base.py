r"""Base class of likelihoods p(x|z), and the scoring of partly observed data.

Observation masks
-----------------
A mask ``m`` (``bool`` of x's shape, ``True`` where the entry was observed) turns the
likelihood's density of one datum into the density of its observed entries,

.. math::  \log p(x_{\mathrm{obs}} \mid z) = \sum_d m_d \log p(x_d \mid z),

valid because every registered likelihood factorizes over the entries given z (each
is an elementwise distribution reinterpreted with ``to_event``). :meth:`Likelihood.masked`
wraps p(x|z) in a :class:`MaskedEvent`: the elementwise log densities are multiplied
by the mask *inside* the event and then summed, so a partly observed row is still one
event of the data plate (Pyro's ``poutine.mask`` and ``Distribution.mask`` act on whole
events and could only drop a row entirely). Missing entries are never imputed: before
scoring they are replaced by :attr:`Likelihood.missing_value`, a value inside the
support, so that a NaN (or any value) standing in for a missing entry gives neither a
NaN log density nor a NaN gradient; its term is then multiplied by zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pyro.distributions import Distribution, Independent, constraints
from pyro.distributions.torch_distribution import TorchDistribution
from torch import nn

from ..data.validation import row_chunks
from ..errors import ConfigError, DataError


class MaskedEvent(TorchDistribution):
    """An elementwise distribution ``base`` reinterpreted over ``event_dim`` dimensions,
    scoring only the entries where ``mask`` is ``True`` (see the module docstring).

    Parameters
    ----------
    base : Distribution
        The elementwise distribution (batch shape ``(..., *data_shape)``).
    event_dim : int
        Number of trailing dimensions that form one event.
    mask : Tensor
        ``bool``, broadcastable against ``base``'s batch shape; ``True`` = observed.
    fill : float
        A value inside ``base``'s support put in place of the missing entries.
    """

    arg_constraints: dict = {}
    has_enumerate_support = False

    def __init__(self, base: Distribution, event_dim: int, mask: torch.Tensor, fill: float):
        self.base = base
        self.n_event = int(event_dim)
        self.obs_mask = mask
        self.fill = float(fill)
        shape = base.batch_shape
        cut = len(shape) - self.n_event
        super().__init__(shape[:cut], shape[cut:], validate_args=False)

    @property
    def support(self):
        return constraints.independent(self.base.support, self.n_event)

    @property
    def has_rsample(self) -> bool:
        return self.base.has_rsample

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        base = self.base.expand(batch_shape + self.event_shape)
        return MaskedEvent(base, self.n_event, self.obs_mask, self.fill)

    def complement(self) -> MaskedEvent:
        """The same distribution scoring the other entries (the missing ones): the
        density of x_miss given what ``base`` conditions on."""
        return MaskedEvent(self.base, self.n_event, ~self.obs_mask, self.fill)

    def fill_missing(self, value: torch.Tensor) -> torch.Tensor:
        """``value`` with its missing entries replaced by the in-support fill value."""
        return torch.where(self.obs_mask, value, value.new_tensor(self.fill))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        lp = self.base.log_prob(self.fill_missing(value))
        lp = torch.where(self.obs_mask, lp, lp.new_zeros(()))
        return lp.sum(tuple(range(-self.n_event, 0))) if self.n_event else lp

    def sample(self, sample_shape=()):
        return self.base.sample(sample_shape)

    def rsample(self, sample_shape=()):
        return self.base.rsample(sample_shape)

    @property
    def mean(self) -> torch.Tensor:
        return self.base.mean

    @property
    def variance(self) -> torch.Tensor:
        return self.base.variance


def masked_distribution(d: Distribution, mask: torch.Tensor, fill: float = 0.0) -> Distribution:
    """``d`` (an elementwise distribution reinterpreted with ``to_event``) scoring only
    the entries where ``mask`` is ``True``; ``d`` itself when ``mask`` is None."""
    if mask is None:
        return d
    if not isinstance(d, Independent):
        raise ConfigError(
            f"cannot score an observation mask with a {type(d).__name__}: the likelihood "
            "must return an elementwise distribution with .to_event(event_dim)"
        )
    return MaskedEvent(d.base_dist, d.reinterpreted_batch_ndims, mask, fill)


class Likelihood(nn.Module):
    """Turns decoder outputs into p(x|z).

    Parameters
    ----------
    data_shape : tuple of int
        Shape of one datum; it is the event shape of the distribution.

    Attributes
    ----------
    param_channels : int
        Raw decoder outputs per data dimension.
    support : str
        Human-readable support, used in error messages.
    """

    param_channels: int = 1
    support: str = "real numbers"
    #: One of "binary", "unit" ([0, 1]), "open-unit" ((0, 1)), "real", "8bit"
    #: (grey levels k/255) or "count"; tests use it to pick data and checks.
    support_kind: str = "real"

    def __init__(self, data_shape: Sequence[int]) -> None:
        super().__init__()
        self.data_shape = tuple(int(s) for s in data_shape)
        self.event_dim = len(self.data_shape)

    #: A value inside the support that stands in for missing entries before they are
    #: scored (and their terms dropped): see the module docstring.
    missing_value: float = 0.0

    def forward(self, params: torch.Tensor) -> Distribution:  # pragma: no cover - abstract
        raise NotImplementedError

    def masked(self, d: Distribution, mask: torch.Tensor | None) -> Distribution:
        """p(x_obs | z): ``d = self(params)`` scoring only the entries where ``mask``
        (``bool``, broadcasting against ``d``'s batch + event shape) is ``True``, one
        event per datum; missing entries are replaced by :attr:`missing_value` before
        scoring. ``d`` itself when ``mask`` is None."""
        return masked_distribution(d, mask, self.missing_value)

    def in_support(self, x: torch.Tensor) -> torch.Tensor:
        """Boolean mask of entries of ``x`` inside the support."""
        return torch.isfinite(x)

    def validate(self, x: torch.Tensor) -> None:
        """Raise :class:`DataError` naming the problem if ``x`` is outside the support."""
        # chunk by chunk first: no data-set-sized temporaries when all is well
        if all(bool(self.in_support(c).all()) for c in row_chunks(x)):
            return
        ok = self.in_support(x)
        if not bool(ok.all()):
            bad = x[~ok]
            raise DataError(
                f"the {self.registry_name} likelihood needs {self.support}, but "
                f"{bad.numel()} value(s) lie outside it (e.g. {float(bad.flatten()[0]):g}; "
                f"data range [{float(x.min()):g}, {float(x.max()):g}]); "
                "choose another likelihood or rescale the data"
            )

    #: ``validate`` checks ``in_support`` entry by entry, so data read in chunks
    #: can be checked chunk by chunk (:func:`pyrovae.data.validation.check_support`);
    #: a subclass that overrides ``validate`` loses this mark.
    validate.elementwise = True

    def caveat(self, x) -> str | None:
        """A warning for data ``x`` inside the support on which log p(x|z) is not a
        normalised log-likelihood (so that its ELBO is not a bound on log p(x)), or None.
        ``x`` may be a stream (read chunk by chunk)."""
        return None

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """E[x|z] for decoder output ``params``."""
        return self(params).mean

    registry_name = "custom"
