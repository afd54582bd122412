"""Consistency checks between components, run before training starts."""

from __future__ import annotations

import torch

from ..errors import ConfigError


def check_latent_sizes(prior, guide_head, latent_dim: int) -> None:
    """Raise :class:`ConfigError` if prior, guide and ``latent_dim`` disagree."""
    prior_dim = getattr(prior, "latent_dim", None)
    guide_dim = getattr(guide_head, "latent_dim", None) if guide_head is not None else None
    for what, dim in (("prior", prior_dim), ("guide", guide_dim)):
        if dim is not None and int(dim) != latent_dim:
            raise ConfigError(
                f"the {what} has latent size {dim} but the model's latent_dim is {latent_dim}"
            )
    with torch.no_grad():
        event = tuple(prior().event_shape)
    if event != (latent_dim,):
        raise ConfigError(f"the prior's event shape is {event}; expected ({latent_dim},)")
