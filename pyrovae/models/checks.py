"""Consistency checks between components, run when a model is built."""

from __future__ import annotations

import torch

from ..errors import ConfigError


def check_latent_sizes(prior, prior_dim: int, guide_head, guide_dim: int) -> None:
    """Raise :class:`ConfigError` if the prior or the guide has the wrong latent size.

    Parameters
    ----------
    prior, guide_head
        The built components.
    prior_dim, guide_dim : int
        The sizes the model needs them to have.
    """
    for what, comp, want in (("prior", prior, prior_dim), ("guide", guide_head, guide_dim)):
        dim = getattr(comp, "latent_dim", None)
        if dim is not None and int(dim) != want:
            raise ConfigError(
                f"the {what} has latent size {dim} but the model's latent_dim is {want}"
            )
    with torch.no_grad():
        event = tuple(prior.reference().event_shape)
    if event != (prior_dim,):
        hint = ""
        if getattr(type(prior), "bind", None) not in (None, _base_bind()):
            # e.g. the VampPrior: a mixture of the guide's posteriors, so it lives in the
            # guide's latent space, which a hierarchical model's top layer does not share
            hint = " (this prior is built from the guide, so its size is the guide's)"
        raise ConfigError(
            f"the prior's event shape is {event}; this model needs a prior over "
            f"({prior_dim},){hint}"
        )


def _base_bind():
    from ..priors.base import Prior

    return Prior.bind
