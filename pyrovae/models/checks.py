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
        event = tuple(prior().event_shape)
    if event != (prior_dim,):
        raise ConfigError(f"the prior's event shape is {event}; expected ({prior_dim},)")
