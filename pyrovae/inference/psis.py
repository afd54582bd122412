r"""Pareto k-hat of importance weights (PSIS; Vehtari, Simpson, Gelman, Yao & Gabry 2024).

With the guide as an importance proposal for the exact posterior, weights
w_s = p(x, z_s) / q(z_s | x), z_s ~ q. A generalized Pareto distribution is fitted
to the largest M = ceil(min(0.2 S, 3 sqrt(S))) weights (Zhang & Stephens 2009, with
the weak prior of the PSIS paper); its shape k-hat estimates how heavy the weights'
tail is: k-hat < 0.5 the proposal is good, 0.5-0.7 usable with care, > 0.7 the
importance estimates (and log p(x)) are unreliable and q(z|x) misses posterior mass.
A cheap per-data-point warning signal for the amortized guide.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def _gpd_fit(exceed: np.ndarray) -> float:
    """Shape k of a generalized Pareto fit to sorted positive exceedances."""
    n = exceed.size
    prior_bs, prior_k = 3.0, 10.0
    m = 30 + int(math.sqrt(n))
    b = 1 - np.sqrt(m / (np.arange(1, m + 1, dtype=float) - 0.5))
    b /= prior_bs * exceed[int(n / 4 + 0.5) - 1]
    b += 1 / exceed[-1]
    k = np.log1p(-b[:, None] * exceed).mean(axis=1)
    log_lik = n * (np.log(-(b / k)) - k - 1)
    weights = 1 / np.exp(log_lik - log_lik[:, None]).sum(axis=1)
    keep = weights >= 10 * np.finfo(float).eps
    weights, b = weights[keep], b[keep]
    weights /= weights.sum()
    b_post = float((b * weights).sum())
    k_post = float(np.log1p(-b_post * exceed).mean())
    return (n * k_post + prior_k * 0.5) / (n + prior_k)


def pareto_khat(log_weights: torch.Tensor | np.ndarray) -> np.ndarray:
    """k-hat for each column of ``log_weights`` (shape ``(S, n)``: S draws, n data points)."""
    lw = np.asarray(
        log_weights.detach().cpu() if torch.is_tensor(log_weights) else log_weights, dtype=float
    )
    if lw.ndim == 1:
        lw = lw[:, None]
    s = lw.shape[0]
    tail = int(math.ceil(min(0.2 * s, 3 * math.sqrt(s))))
    out = np.full(lw.shape[1], np.inf)
    if tail < 5:
        return out
    for j in range(lw.shape[1]):
        col = np.sort(lw[:, j] - lw[:, j].max())
        cutoff = col[-tail - 1]
        exceed = np.exp(col[-tail:]) - np.exp(cutoff)
        exceed = exceed[exceed > 0]
        if exceed.size >= 5:
            out[j] = _gpd_fit(np.sort(exceed))
    return out
