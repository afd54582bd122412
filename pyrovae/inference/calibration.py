r"""Simulation-based calibration of the amortized posterior (Talts et al. 2018).

The model is its own ground truth: draw z* ~ p(z), x ~ p(x | z*), then L draws
z_1..z_L ~ q(z | x) from the guide's joint posterior (``module.posterior_sample``; for a
hierarchical VAE, draws of the code z the decoder reads, each with its own draw of the
other layer). If q(z|x) were the exact posterior, the rank of z*_d among the
z_{l,d} would be uniform on {0, ..., L} for every dimension d. pyrovae reports per
dimension:

* the rank histogram (``B`` bins) and a chi-square test of uniformity (its p-value);
* coverage of central credible intervals: how often z*_d falls inside the guide's
  central 50 % and 90 % intervals (ideal: 0.50 and 0.90).

A histogram peaked in the middle means an underconfident (too wide) guide, a U shape
an overconfident one, a slope a biased one.

:func:`conformal_quantile` calibrates a band's width on held-out cases instead (split
conformal prediction; Vovk, Gammerman & Shafer 2005; Lei et al. 2018; Angelopoulos &
Bates 2023). Given nonconformity scores s_1..s_n of n calibration cases (for a band
μ ± q·sd, the standardized errors |x − μ| / sd) and a new case exchangeable with them,
the ⌈(n + 1)·level⌉-th smallest score q gives P(s_{n+1} ≤ q) ≥ level, and, for
continuous scores, exactly ⌈(n + 1)·level⌉ / (n + 1), whatever the scores' distribution:
the new score's rank among the n + 1 is uniform. When each case has several cells (a
surface and its hidden cells) the cases, not the cells, are exchangeable: the target is
a new case's mean coverage, E[(1/m) Σ_c 1{s_c ≤ q}]. Drawing one cell at random from
each case reduces this to the single-score statement; averaging over that draw gives
the weighted rule used here, each cell of case i weighing 1/m_i and q the smallest score
with Σ_i F_i(q) ≥ level·(G + 1), F_i case i's empirical distribution function and G the
number of cases (with one cell per case it is the unweighted rule).
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError
from ..models.base import require_latent_variables
from .progress import progress_bar

#: Simulations whose guide draws are taken at once (the unit of the progress bar).
CHUNK = 100


@torch.no_grad()
def sbc(
    module, n: int = 500, draws: int = 99, bins: int = 10, seed: int = 0, progress: bool = False
) -> dict:
    """Rank statistics of ``n`` simulated codes among ``draws`` guide draws each.

    The codes and their data are simulated at once; the guide's draws are taken for
    :data:`CHUNK` simulations at a time, with a progress bar when ``progress``.

    Returns
    -------
    dict
        ``ranks`` (``(n, L)`` ints in 0..draws), ``histogram`` (``(L, bins)``),
        ``p_values`` (chi-square uniformity per dimension), ``coverage_50`` and
        ``coverage_90`` (per dimension), and ``min_p_value``.
    """
    require_latent_variables(module, "calibration")
    if (draws + 1) % bins:
        raise ConfigError(f"draws + 1 must be a multiple of bins; got {draws} and {bins}")
    was_training = module.training
    module.eval()
    torch.manual_seed(seed)
    try:
        z_true = module.sample_latent(n)
        x = module.decode(z_true).sample()
        chunks = progress_bar(
            range(0, n, CHUNK), enabled=progress, desc="SBC", unit="chunk", leave=False
        )
        zs = torch.cat(  # (draws, n, L)
            [module.code_of(module.posterior_sample(x[i : i + CHUNK], draws)) for i in chunks], 1
        )
    finally:
        module.train(was_training)
    ranks = (zs < z_true).sum(0).cpu().numpy()  # (n, L)
    width = (draws + 1) // bins
    hist = np.stack([np.bincount(r // width, minlength=bins) for r in ranks.T])
    from scipy import stats  # SciPy's statistics take 0.4 s to import: only when used

    p_values = np.array([stats.chisquare(h).pvalue for h in hist])
    cover = {}
    for level in (0.5, 0.9):
        lo = torch.quantile(zs, (1 - level) / 2, dim=0)
        hi = torch.quantile(zs, (1 + level) / 2, dim=0)
        cover[level] = ((z_true >= lo) & (z_true <= hi)).float().mean(0).cpu().numpy()
    return {
        "ranks": ranks,
        "histogram": hist,
        "p_values": p_values,
        "min_p_value": float(p_values.min()),
        "coverage_50": cover[0.5],
        "coverage_90": cover[0.9],
        "n": n,
        "draws": draws,
    }


def plot_rank_histograms(result: dict, path) -> None:
    """Save the rank histograms, one panel per latent dimension, with the uniform band."""
    from ..plotting import pyplot

    plt = pyplot()
    hist = result["histogram"]
    dims, bins = hist.shape
    n = result["n"]
    expected = n / bins
    from scipy import stats

    band = stats.binom.ppf([0.005, 0.995], n, 1 / bins)
    cols = min(dims, 4)
    rows = -(-dims // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.2 * rows), squeeze=False)
    for d in range(rows * cols):
        ax = axes[d // cols, d % cols]
        if d >= dims:
            ax.axis("off")
            continue
        ax.axhspan(band[0], band[1], color="0.85")
        ax.axhline(expected, color="0.5", lw=1)
        ax.bar(np.arange(bins), hist[d], width=0.9, color="C0")
        ax.set_title(f"z[{d}]  p = {result['p_values'][d]:.2f}", fontsize=9)
        ax.set_xticks([])
    fig.suptitle("SBC rank histograms (grey: 99 % band under uniformity)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def conformal_quantile(scores, level: float = 0.9, groups=None) -> float:
    """The split-conformal quantile of nonconformity ``scores`` (see the module docstring).

    Parameters
    ----------
    scores : array_like
        Nonconformity scores of the calibration cells, one per cell (NaN not allowed;
        ``inf`` allowed: a cell that no finite band covers).
    level : float
        The target coverage, in (0, 1).
    groups : array_like of int, optional
        The case of each cell. Each case then weighs 1 in all, shared equally by its
        cells, and the quantile targets a new case's mean coverage. Default: every cell
        is its own case.

    Returns
    -------
    float
        The smallest score q with Σ_i F_i(q) ≥ level·(G + 1), or ``inf`` when the G
        cases are too few for the level (level·(G + 1) > G).
    """
    s = np.asarray(scores, dtype=float).ravel()
    if not 0.0 < level < 1.0:
        raise ConfigError(f"level must be in (0, 1); got {level}")
    if s.size == 0:
        raise ConfigError("conformal_quantile needs at least one calibration score")
    if np.isnan(s).any():
        raise ConfigError("conformal_quantile: the scores hold NaN")
    if groups is None:
        g = np.arange(s.size)
    else:
        g = np.asarray(groups).ravel()
        if g.shape != s.shape:
            raise ConfigError(
                f"conformal_quantile: {g.size} groups for {s.size} scores; give one per score"
            )
    _, g, sizes = np.unique(g, return_inverse=True, return_counts=True)
    cases = sizes.size
    need = level * (cases + 1)
    if need > cases:
        return float("inf")
    order = np.argsort(s, kind="stable")
    mass = np.cumsum(1.0 / sizes[g[order]])
    # the first score at which the cumulative weight reaches level·(G + 1); a relative
    # tolerance absorbs the rounding of sums of 1/m_i
    k = int(np.searchsorted(mass, need * (1 - 1e-12)))
    return float(s[order][min(k, s.size - 1)])
