"""Base class of likelihoods p(x|z)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pyro.distributions import Distribution
from torch import nn

from ..data.validation import row_chunks
from ..errors import DataError


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

    def forward(self, params: torch.Tensor) -> Distribution:  # pragma: no cover - abstract
        raise NotImplementedError

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
