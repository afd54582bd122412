r"""A trained decoder as a prior inside another Pyro model (PriorVAE).

Semenova et al. (2022, "PriorVAE: encoding spatial priors with variational autoencoders
for small-area estimation", J. R. Soc. Interface 19: 20220094) train a VAE on draws of an
expensive prior over functions (a Gaussian process on a grid) and then replace that prior,
inside the downstream model, by

    z ~ p(z),    f = E[x | decoder(z)],

so that MCMC runs over the low-dimensional z instead of the function's values.

:class:`DecoderPrior` is that prior as a Pyro-callable: each call samples the code at
sites named ``f"{name}_z"`` (the model family's own prior program,
:meth:`~pyrovae.models.LatentModule.prior_program`; a hierarchical VAE adds
``f"{name}_z2"``), decodes it, and records the chosen output of p(x|z) as the
deterministic site ``f"{name}_f"``. It holds a frozen copy of the networks (eval mode,
``requires_grad`` off) that is never registered with ``pyro.module`` or the parameter
store, so that NUTS (with or without ``jit_compile``) moves only z.
"""

from __future__ import annotations

import copy

import pyro
import torch
from pyro import poutine
from pyro.distributions import Distribution, Independent

from ..errors import ConfigError
from ..models.base import require_latent_variables

#: The outputs of p(x|z) with units, and how a per-feature affine map of the data
#: (x = x' scale + shift) acts on them: locations move and stretch, scales stretch.
AFFINE_OUTPUTS = {"mean": "location", "loc": "location", "stddev": "scale", "scale": "scale"}


def _base(px: Distribution) -> Distribution:
    while isinstance(px, Independent):
        px = px.base_dist
    return px


def output_names(px: Distribution) -> list[str]:
    """The outputs :class:`DecoderPrior` can return for a likelihood's distribution
    ``px``: ``mean``, ``stddev`` and the parameters of its (unwrapped) distribution."""
    return ["mean", "stddev", *sorted(_base(px).arg_constraints)]


def distribution_output(px: Distribution, output: str) -> torch.Tensor:
    """``px``'s mean, standard deviation, or the parameter named ``output``."""
    if output in ("mean", "stddev"):
        return getattr(px, output)
    return getattr(_base(px), output)


class DecoderPrior:
    """A trained model's prior over data, ``f = output(p(x | decoder(z)))`` with
    ``z ~ p(z)``, as a Pyro-callable (see the module docstring).

    Parameters
    ----------
    module : LatentModule
        A trained model family with latent variables (``est.module_``); copied.
    name : str
        Prefix of the sites: ``f"{name}_z"`` (the code) and ``f"{name}_f"`` (the output).
    output : str
        ``"mean"`` (E[x|z]), ``"stddev"``, or a parameter of the likelihood's
        distribution (``"loc"``, ``"scale"``, ``"probs"``, ``"logits"``, ``"rate"``, ...).
    shift, scale : Tensor, optional
        Per-feature affine map back to data units, ``x = x' scale + shift`` (the inverse of
        the scaling the model was trained on); applied to the outputs with units
        (:data:`AFFINE_OUTPUTS`) and refused for the others.

    Examples
    --------
    >>> prior = DecoderPrior(est.module_, "gp")            # doctest: +SKIP
    >>> def model(idx, y=None):                            # doctest: +SKIP
    ...     f = prior()                                    # z at "gp_z", f at "gp_f"
    ...     pyro.sample("y", dist.Normal(f[idx], 0.1).to_event(1), obs=y)
    """

    def __init__(
        self,
        module,
        name: str,
        output: str = "mean",
        shift: torch.Tensor | None = None,
        scale: torch.Tensor | None = None,
    ) -> None:
        require_latent_variables(module, "a decoder prior")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"the prior's name must be a non-empty string; got {name!r}")
        self.module = copy.deepcopy(module).eval()
        self.module.requires_grad_(False)
        self.name = str(name)
        self.data_shape = tuple(module.data_shape)
        self.latent_dim = int(module.code_dim)
        device = next(self.module.parameters()).device
        devices = [device] if device.type == "cuda" else []
        # one code from the family's own prior program (a family whose decoder reads
        # more than z refuses there with one line), drawn without touching the caller's
        # random state or trace
        with torch.no_grad(), torch.random.fork_rng(devices=devices), poutine.block():
            px = self.module.decode(self.module.prior_program(self.name))
        names = output_names(px)
        if output not in names:
            raise ConfigError(
                f"output {output!r} is not one of the likelihood's: {', '.join(names)}"
            )
        self.output = output
        units = AFFINE_OUTPUTS.get(output)
        if shift is not None and units is None:
            raise ConfigError(
                f"output {output!r} has no data units to scale back to; "
                "use units='model', or the mean, loc, stddev or scale"
            )
        self.shift = self._per_feature(shift, px) if units == "location" else None
        self.scale = self._per_feature(scale, px) if units is not None else None

    def _per_feature(self, t, px: Distribution) -> torch.Tensor | None:
        """``t`` as a tensor of the data's shape, dtype and device (None stays None)."""
        if t is None:
            return None
        return torch.as_tensor(t).to(px.mean).reshape(self.data_shape)

    @property
    def latent_site(self) -> str:
        """The name of the code's sample site (the decoder's input)."""
        return f"{self.name}_z"

    @property
    def output_site(self) -> str:
        """The name of the deterministic site holding the output."""
        return f"{self.name}_f"

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The output for codes ``z`` of shape ``(..., latent_dim)``, shape
        ``(..., *data_shape)``, in data units."""
        f = distribution_output(self.module.decode(z), self.output)
        if self.scale is not None:
            f = f * self.scale
        if self.shift is not None:
            f = f + self.shift
        return f

    def __call__(self) -> torch.Tensor:
        """Sample the code from the prior, decode it, record and return the output."""
        z = self.module.prior_program(self.name)
        return pyro.deterministic(self.output_site, self.decode(z), event_dim=len(self.data_shape))

    def __repr__(self) -> str:
        return (
            f"DecoderPrior(name={self.name!r}, output={self.output!r}, "
            f"latent_dim={self.latent_dim}, data_shape={self.data_shape})"
        )
