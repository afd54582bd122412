"""Base class of priors p(z)."""

from __future__ import annotations

import pyro.settings
import torch
from pyro.distributions import Distribution
from pyro.nn import PyroModule

from ..errors import ConfigError


class Prior(PyroModule):
    """A prior over the latent code ``z``.

    Parameters
    ----------
    latent_dim : int
        Dimension of ``z``.

    Notes
    -----
    Subclasses implement :meth:`forward`, returning a distribution with
    ``event_shape == (latent_dim,)``. Learnable parameters are ordinary
    ``nn.Parameter`` attributes (point estimates saved in ``state_dict``);
    priors run with Pyro's ``module_local_params`` setting, so they never
    touch the global parameter store.

    A *conditional* prior (:attr:`conditional` True) is p(z | c): its ``forward``
    takes the condition codes ``c`` of shape ``(..., width)`` and returns a
    distribution of batch shape ``c.shape[:-1]``; its :meth:`bind` refuses a family
    without a condition (``module.condition_dim`` 0), and its ``sample(n, c)`` takes one
    condition code. The registry's contract tests call conditional priors with a
    condition code and build them in the ``cvae`` family.
    """

    #: Whether ``forward`` reads a condition code c (a prior p(z | c)).
    conditional: bool = False

    def __init__(self, latent_dim: int) -> None:
        # Parameters stay local to the module: nothing enters Pyro's global param
        # store, so models never share or leak parameters (see __call__).
        with pyro.settings.context(module_local_params=True):
            super().__init__()
        if int(latent_dim) <= 0:
            raise ConfigError(f"latent_dim must be a positive integer; got {latent_dim}")
        self.latent_dim = int(latent_dim)

    def __call__(self, *args, **kwargs) -> Distribution:
        with pyro.settings.context(module_local_params=True):
            return super().__call__(*args, **kwargs)

    def bind(self, module) -> None:
        """Called once by the VAE that owns this prior (VampPrior uses its encoder)."""

    def reference(self) -> Distribution:
        """The distribution with no condition: ``self()``; a conditional prior's at one
        condition code (shape checks and the contract tests use it)."""
        return self()

    def forward(self) -> Distribution:  # pragma: no cover - abstract
        raise NotImplementedError

    def sample(self, n: int) -> torch.Tensor:
        """Draw ``n`` codes, shape ``(n, latent_dim)``."""
        with torch.no_grad():
            return self().sample((n,))
