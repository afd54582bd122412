r"""Composite Gauss–Legendre rules on :math:`[0, U]`.

The Fourier integrals of :mod:`pyrovae.finance.heston` are smooth but oscillate with a
frequency set by the log-moneyness; a composite rule of equal panels, each with a
fixed Gauss–Legendre rule of ``m`` nodes (exact for polynomials of degree ``2m - 1``),
resolves them with a node count proportional to the number of oscillations and
needs the Legendre nodes of one order only (computed once and cached).

References
----------
P. J. Davis and P. Rabinowitz (1984), Methods of Numerical Integration, 2nd ed.,
Academic Press, §2.7 (Gauss–Legendre rules) and §2.4 (compound rules).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

__all__ = ["composite_gauss_legendre"]


@lru_cache(maxsize=8)
def _legendre(m: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = np.polynomial.legendre.leggauss(int(m))
    return x, w


def composite_gauss_legendre(
    upper: float, panels: int, nodes_per_panel: int = 16, graded: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights of the composite Gauss–Legendre rule on ``[0, upper]``.

    Parameters
    ----------
    upper : float
        Upper end of the interval (> 0).
    panels : int
        Number of equal panels.
    nodes_per_panel : int
        Gauss–Legendre order on each panel.
    graded : int
        The first panel ``[0, h]`` is split geometrically into ``graded + 1`` panels
        ``[0, h/2^graded], ..., [h/4, h/2], [h/2, h]``, which resolves an integrand that
        varies on a scale much shorter than ``h`` near 0 (a singularity of its analytic
        continuation close to the origin).

    Returns
    -------
    nodes, weights : Tensor
        float64, shape ``((panels + graded) * nodes_per_panel,)``, nodes increasing.
    """
    x, w = _legendre(nodes_per_panel)
    h = float(upper) / int(panels)
    first = h * 0.5 ** np.arange(int(graded), -1, -1)  # right ends of the graded panels
    edges = np.concatenate([[0.0], first, h * np.arange(2, int(panels) + 1)])
    left, width = edges[:-1, None], np.diff(edges)[:, None]
    nodes = (left + 0.5 * width * (x[None, :] + 1.0)).ravel()
    weights = (0.5 * width * w[None, :]).ravel()
    return torch.from_numpy(nodes), torch.from_numpy(weights)
