r"""Export posterior draws to ArviZ (through :mod:`pyrovae.arviz_compat`).

For chosen inputs x_1..x_n and S joint draws z_s ~ q(z | x_i) from the amortized guide
(``module.posterior_sample``):

* ``posterior``: every latent site; ``z`` (the code the decoder reads) with dims
  (chain, draw, datum, latent), any other site ``s`` (a hierarchical VAE's top layer
  ``z2``) with dims (chain, draw, datum, ``s_latent``);
* ``posterior_predictive``: ``x`` ~ p(x | z_s), dims (chain, draw, datum, feature);
* ``log_likelihood``: ``x`` = log p(x_i | z_s), dims (chain, draw, datum)
  (pointwise, per data point);
* ``observed_data``: ``x``, dims (datum, feature).

Data are flattened to ``feature`` = prod(data_shape); coordinates ``datum`` are
the rows' indices, ``feature`` the features' names where the data name them (a CSV
header), else their indices. For a hierarchical VAE each draw of ``z`` comes with its own
draw of ``z2``, as the guide makes them. With a Bayesian decoder
(:mod:`pyrovae.models.bayesian`) draw s also draws the decoder weights θ_s ~ q(θ):
``posterior_predictive`` and ``log_likelihood`` are then over (θ, z) jointly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from .. import arviz_compat, sites
from ..data.batch import as_batch
from ..errors import ConfigError
from ..models.base import require_latent_variables


@torch.no_grad()
def posterior_groups(module, x: torch.Tensor, draws: int = 200) -> dict:
    """The four groups as plain dicts of NumPy arrays (chain axis of length 1)."""
    require_latent_variables(module, "ArviZ export")
    was_training = module.training
    module.eval()
    try:
        latents = module.posterior_sample(x, int(draws))  # site -> (S, n, dim)
        x_rep, loglik = _predictive(module, x, module.code_of(latents))
        x = as_batch(x).x
    finally:
        module.train(was_training)
    n = x.shape[0]
    return {
        "posterior": {name: z.cpu().numpy()[None] for name, z in latents.items()},
        "posterior_predictive": {"x": x_rep.reshape(draws, n, -1).cpu().numpy()[None]},
        "log_likelihood": {"x": loglik.cpu().numpy()[None]},
        "observed_data": {"x": x.reshape(n, -1).cpu().numpy()},
    }


def _predictive(module, x, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Draws x ~ p(x | z_s) ``(S, n, *data_shape)`` and log p(x | z_s) ``(S, n)``; for a
    Bayesian decoder each draw s decodes with its own weights θ_s ~ q(θ)."""
    weights = getattr(module, "decoder_weights", None)
    if weights is None:
        px = module.decode_rows(z, x)  # given the rows' conditions, in a conditional family
        return px.sample(), px.log_prob(as_batch(x).x)
    x = as_batch(x).x
    reps, logliks = [], []
    thetas = list(weights.draws(z.shape[0]))
    for z_s, theta in zip(z, thetas, strict=True):
        with weights.fixed(theta):
            px = module.decode(z_s)
        reps.append(px.sample())
        logliks.append(px.log_prob(x))
    return torch.stack(reps), torch.stack(logliks)


def latent_dim_name(site: str) -> str:
    """The ArviZ dimension of a latent site's coordinates: ``latent`` for the code ``z``,
    ``<site>_latent`` for any other site."""
    return "latent" if site == sites.LATENT else f"{site}_latent"


def to_arviz(
    module,
    x: torch.Tensor,
    draws: int = 200,
    index: Sequence[int] | None = None,
    feature_names: Sequence[str] | None = None,
):
    """ArviZ data (InferenceData on ArviZ 0.x, DataTree on >= 1.0) for inputs ``x``.

    Parameters
    ----------
    module : LatentModule
        A fitted model family with latent variables.
    x : Tensor
        Inputs ``(n, *data_shape)``.
    draws : int
        Posterior draws per input.
    index : sequence of int, optional
        Coordinates of the ``datum`` dimension (default 0..n-1).
    feature_names : sequence of str, optional
        Coordinates of the ``feature`` dimension, one per feature (default 0..D-1).

    Raises
    ------
    ConfigError
        ``feature_names`` does not name every feature.
    """
    n, d = len(x), math.prod(module.data_shape)
    if feature_names is not None and len(feature_names) != d:
        raise ConfigError(f"feature_names has {len(feature_names)} names for {d} features")
    groups = posterior_groups(module, x, draws)
    coords = {
        "datum": np.asarray(index if index is not None else np.arange(n)),
        "feature": np.asarray(
            [str(f) for f in feature_names] if feature_names is not None else np.arange(d)
        ),
    }
    dims = {"x": ["datum", "feature"]}
    for name, z in groups["posterior"].items():
        dim = latent_dim_name(name)
        dims[name] = ["datum", dim]
        coords[dim] = np.arange(z.shape[-1])
    data = arviz_compat.from_groups(groups, dims=dims, coords=coords)
    return data
