r"""Export posterior draws to ArviZ (through :mod:`pyrovae.arviz_compat`).

For chosen inputs x_1..x_n and S draws z_s ~ q(z | x_i) from the amortized guide:

* ``posterior``: ``z`` with dims (chain, draw, datum, latent);
* ``posterior_predictive``: ``x`` ~ p(x | z_s), dims (chain, draw, datum, feature);
* ``log_likelihood``: ``x`` = log p(x_i | z_s), dims (chain, draw, datum)
  (pointwise, per data point);
* ``observed_data``: ``x``, dims (datum, feature).

Data are flattened to ``feature`` = prod(data_shape); coordinates ``datum`` are
the rows' indices. For a hierarchical VAE the draws of ``z`` are those of the
bottom latent the decoder reads.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .. import arviz_compat
from ..errors import ConfigError


@torch.no_grad()
def posterior_groups(module, x: torch.Tensor, draws: int = 200) -> dict:
    """The four groups as plain dicts of NumPy arrays (chain axis of length 1)."""
    if not getattr(module, "has_latent_sites", False):
        raise ConfigError("ArviZ export needs a model with latent variables (not an autoencoder)")
    was_training = module.training
    module.eval()
    try:
        q = module.encode(x)
        z = q.sample((int(draws),))  # (S, n, L)
        px = module.decode(z)
        x_rep = px.sample()  # (S, n, *data_shape)
        loglik = px.log_prob(x)  # (S, n)
    finally:
        module.train(was_training)
    n = x.shape[0]
    return {
        "posterior": {"z": z.cpu().numpy()[None]},
        "posterior_predictive": {"x": x_rep.reshape(draws, n, -1).cpu().numpy()[None]},
        "log_likelihood": {"x": loglik.cpu().numpy()[None]},
        "observed_data": {"x": x.reshape(n, -1).cpu().numpy()},
    }


def to_arviz(module, x: torch.Tensor, draws: int = 200, index: Sequence[int] | None = None):
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
    """
    groups = posterior_groups(module, x, draws)
    n, latent = groups["posterior"]["z"].shape[2:]
    coords = {
        "datum": np.asarray(index if index is not None else np.arange(n)),
        "latent": np.arange(latent),
        "feature": np.arange(groups["observed_data"]["x"].shape[1]),
    }
    dims = {"z": ["datum", "latent"], "x": ["datum", "feature"]}
    data = arviz_compat.from_groups(groups, dims=dims, coords=coords)
    return data
