"""Figures without a display: the one way pyrovae gets ``pyplot``, and the image
grids and scatter matrices that run folders, analyses and reports share."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (unless the caller has
    already chosen a backend), imported on first use so that importing pyrovae stays
    fast."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def image_grid(x: torch.Tensor, ncol: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile images ``(N, C, H, W)`` (or ``(N, H, W)``) into one array ``(H', W'[, 3])``.

    Values are clipped to [0, 1].
    """
    x = torch.as_tensor(x).detach().cpu().float()
    if x.dim() == 3:
        x = x.unsqueeze(1)
    n, c, h, w = x.shape
    ncol = ncol or math.ceil(math.sqrt(n))
    nrow = math.ceil(n / ncol)
    grid = torch.ones(c, nrow * (h + pad) + pad, ncol * (w + pad) + pad)
    for i in range(n):
        r, k = divmod(i, ncol)
        grid[
            :,
            pad + r * (h + pad) : pad + r * (h + pad) + h,
            pad + k * (w + pad) : pad + k * (w + pad) + w,
        ] = x[i]
    grid = grid.clamp(0, 1).numpy()
    return grid[0] if c == 1 else np.moveaxis(grid[:3], 0, -1)


def image_rows_figure(rows, labels, ncol: int | None = None):
    """A matplotlib figure of stacked image grids, one per entry of ``rows`` (values in
    [0, 1]), each titled by its entry of ``labels``."""
    plt = pyplot()
    grids = [image_grid(r, ncol=ncol or r.shape[0]) for r in rows]
    width = max(g.shape[1] for g in grids)
    height = sum(g.shape[0] for g in grids)
    fig, axes = plt.subplots(
        len(grids),
        1,
        figsize=(max(4.0, width / 10), height / 10 + 0.35 * len(grids) + 0.2),
        squeeze=False,
    )
    for ax, g, label in zip(axes[:, 0], grids, labels, strict=True):
        ax.imshow(g, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(label, fontsize=9, loc="left")
        ax.axis("off")
    fig.tight_layout()
    return fig


def save_image_rows(
    path: str | Path, rows: list[torch.Tensor], labels: list[str], ncol: int | None = None
) -> Path:
    """Save stacked image grids, one per entry of ``rows``, with labels (a PNG)."""
    fig = image_rows_figure(rows, labels, ncol)
    path = Path(path)
    fig.savefig(path, dpi=100)
    pyplot().close(fig)
    return path


def feature_labels(names: Sequence[str] | None, d: int) -> list[str]:
    """Axis labels of ``d`` features: their ``names`` (a CSV header's) where the data
    name them, else ``feature 0``, ``feature 1``, ..."""
    if names is not None and len(names) >= d:
        return [str(n) for n in names[:d]]
    return [f"feature {j}" for j in range(d)]


def save_scatter_matrix(
    path: str | Path,
    sets: dict[str, torch.Tensor],
    max_features: int = 4,
    names: Sequence[str] | None = None,
) -> Path:
    """Pairwise scatter plots of the first features of tabular data (one colour per set),
    the axes labelled with the features' ``names`` where given."""
    plt = pyplot()
    arrays = {
        # float64: 30 histogram bins over a float32 feature whose values differ in the
        # last digits only would have coinciding edges
        k: torch.as_tensor(v).detach().cpu().reshape(v.shape[0], -1).double().numpy()
        for k, v in sets.items()
    }
    d = min(max_features, next(iter(arrays.values())).shape[1])
    labels = feature_labels(names, d)
    fig, axes = plt.subplots(d, d, figsize=(2.2 * d, 2.2 * d), squeeze=False)
    for i in range(d):
        for j in range(d):
            ax = axes[i, j]
            for label, a in arrays.items():
                if i == j:
                    ax.hist(a[:, i], bins=30, alpha=0.5, density=True, label=label)
                else:
                    ax.scatter(a[:, j], a[:, i], s=3, alpha=0.4, label=label)
            if i == d - 1:
                ax.set_xlabel(labels[j])
            if j == 0:
                ax.set_ylabel(labels[i])
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
