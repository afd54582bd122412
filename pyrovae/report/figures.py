r"""Figures of a run's report: training curves, latent traversals, interpolations
(linear and spherical), a 2-D view of the latent space and KL per latent dimension.

Every ``plot_*`` function returns the figure as PNG bytes (matplotlib, Agg backend),
ready to be embedded in an HTML page; the ``*_codes`` functions return the latent
codes that the figures decode, so they can be tested on their own.

* Latent traversal (Higgins et al. 2017, "beta-VAE"): from a data point's posterior
  mean z0, vary one coordinate z_d over a grid of values, holding the others at z0,
  and decode each code; one row per dimension.
* Interpolation between the posterior means a and b of two data points, linear,
  z(t) = (1 - t) a + t b, and spherical (slerp, see :func:`slerp`; Shoemake 1985,
  White 2016). Under a standard normal prior, codes have norms near sqrt(L); the
  linear path's midpoint has a smaller norm (a region of low prior density in high
  dimension), the spherical path keeps the norm between ||a|| and ||b||.
* Latent view: posterior means of the first two dimensions, or their projection on
  the first two principal components (PCA by SVD of the centred means) when
  latent_dim > 2, coloured by label.
* KL per dimension: the mean over data points of KL(q(z_d|x) || p(z_d)); dimensions
  whose posterior means vary across data points by more than 0.01 are active units
  (Burda et al. 2016, see :func:`pyrovae.analysis.elbo_decomposition`).

References
----------
Shoemake, K. (1985). Animating rotation with quaternion curves. SIGGRAPH 85, 245-254.
White, T. (2016). Sampling generative networks. arXiv:1609.04468.
Higgins, I. et al. (2017). beta-VAE: learning basic visual concepts with a
constrained variational framework. ICLR.
Burda, Y., Grosse, R., Salakhutdinov, R. (2016). Importance weighted autoencoders. ICLR.
"""

from __future__ import annotations

import io
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..plotting import (
    feature_labels,
    image_grid,
    image_rows_figure,
    pyplot,
    save_scatter_matrix,
)

#: Curves of metrics.csv, per panel: (title, metric suffix). Train and validation
#: columns are ``train_<suffix>`` and ``val_<suffix>``.
CURVE_PANELS = (
    ("ELBO (nats per data point)", "elbo"),
    ("reconstruction log p(x|z)", "recon"),
    ("KL(q(z|x) || p(z))", "kl"),
    ("training loss", "loss"),
)


def figure_png(fig, dpi: int = 90) -> bytes:
    """The figure as PNG bytes (the figure is closed)."""
    plt = pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def file_png(write, *args, **kwargs) -> bytes:
    """PNG bytes of a function ``write(path, *args, **kwargs)`` that saves a PNG file."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "figure.png"
        write(path, *args, **kwargs)
        return path.read_bytes()


# -- latent codes ------------------------------------------------------------------


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Linear interpolation z(t) = (1 - t) a + t b for each t; shape ``(len(t), L)``."""
    t = torch.as_tensor(t, dtype=a.dtype).reshape(-1, 1)
    return (1 - t) * a + t * b


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    r"""Spherical linear interpolation between codes ``a`` and ``b``.

    .. math::

        \mathrm{slerp}(a, b; t) = \frac{\sin((1 - t)\,\Omega)}{\sin \Omega}\, a
                                 + \frac{\sin(t\,\Omega)}{\sin \Omega}\, b,
        \qquad \cos \Omega = \frac{a \cdot b}{\lVert a \rVert\, \lVert b \rVert}

    (Shoemake 1985, for quaternions; White 2016 for the latent spaces of generative
    networks). The path goes along the great circle through the directions of ``a``
    and ``b``: it starts at ``a`` (t = 0), ends at ``b`` (t = 1), and for
    ``||a|| = ||b||`` every point has that same norm. When ``a`` and ``b`` are
    (nearly) parallel or opposite, sin Omega -> 0: the formula tends to linear
    interpolation (parallel) or the great circle is undefined (opposite), and linear
    interpolation is returned instead.

    Parameters
    ----------
    a, b : Tensor
        Codes of shape ``(L,)``.
    t : array-like
        Interpolation fractions, usually in [0, 1].
    eps : float
        Below this value of sin Omega, linear interpolation is used.

    Returns
    -------
    Tensor
        ``(len(t), L)``.

    References
    ----------
    Shoemake, K. (1985). Animating rotation with quaternion curves. SIGGRAPH 85.
    White, T. (2016). Sampling generative networks. arXiv:1609.04468.
    """
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    t = torch.as_tensor(t, dtype=a.dtype).reshape(-1, 1)
    cos = torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-30)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    sin = torch.sin(omega)
    if float(sin) < eps:
        return lerp(a, b, t)
    return torch.sin((1 - t) * omega) / sin * a + torch.sin(t * omega) / sin * b


def traversal_codes(
    z0: torch.Tensor, dims: Sequence[int], values: torch.Tensor | np.ndarray
) -> torch.Tensor:
    """Codes that vary one coordinate at a time around ``z0``.

    Parameters
    ----------
    z0 : Tensor
        ``(L,)``, usually a data point's posterior mean.
    dims : sequence of int
        The coordinates to traverse.
    values : array-like
        ``(V,)`` values for every coordinate, or ``(len(dims), V)`` one row each.

    Returns
    -------
    Tensor
        ``(len(dims), V, L)``: entry ``[i, j]`` equals ``z0`` except coordinate
        ``dims[i]``, which is ``values[j]`` (or ``values[i, j]``).
    """
    z0 = torch.as_tensor(z0, dtype=torch.float32)
    values = torch.as_tensor(values, dtype=z0.dtype)
    if values.dim() == 1:
        values = values.expand(len(dims), -1)
    codes = z0.expand(len(dims), values.shape[1], z0.shape[0]).clone()
    for i, d in enumerate(dims):
        codes[i, :, d] = values[i]
    return codes


def project_2d(mu: np.ndarray) -> tuple[np.ndarray, tuple[str, str]]:
    """Posterior means ``(N, L)`` in two dimensions with the axis labels: the first two
    coordinates when L <= 2 (a zero column added when L = 1), else the projection on
    the first two principal components with the share of variance they explain."""
    mu = np.asarray(mu, dtype=np.float64)
    if mu.shape[1] == 1:
        return np.c_[mu, np.zeros(len(mu))], ("z[0]", "(latent_dim = 1)")
    if mu.shape[1] == 2:
        return mu, ("z[0]", "z[1]")
    centred = mu - mu.mean(0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    share = s**2 / max(float((s**2).sum()), 1e-300)
    xy = centred @ vt[:2].T
    return xy, (f"PC 1 ({share[0]:.0%} of variance)", f"PC 2 ({share[1]:.0%} of variance)")


# -- plots -------------------------------------------------------------------------


def _finite(values) -> np.ndarray:
    return np.array([v if v is not None else np.nan for v in values], dtype=float)


def plot_curves(history: Sequence[dict], latent: bool = True) -> bytes | None:
    """Train and validation curves per epoch from ``metrics.csv`` rows.

    Panels with no finite value are left out (an autoencoder has no ELBO or KL:
    ``latent=False`` shows the reconstruction and loss panels only). Returns None
    when nothing can be drawn.
    """
    plt = pyplot()
    if not history:
        return None
    epochs = _finite([row.get("epoch") for row in history])
    panels = []
    for title, suffix in CURVE_PANELS:
        if not latent and suffix in ("elbo", "kl"):
            continue
        if latent and suffix == "loss":
            continue  # for a VAE the loss is -ELBO (times beta on the KL): shown above
        lines = {
            split: _finite([row.get(f"{split}_{suffix}") for row in history])
            for split in ("train", "val")
        }
        lines = {k: v for k, v in lines.items() if np.isfinite(v).any()}
        if lines:
            panels.append((title, lines))
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2), squeeze=False)
    for ax, (title, lines) in zip(axes[0], panels, strict=True):
        for split, v in lines.items():
            ok = np.isfinite(v)
            label = "train" if split == "train" else "validation"
            ax.plot(epochs[ok], v[ok], label=label, marker="." if ok.sum() < 30 else None)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return figure_png(fig)


def plot_image_rows(
    rows: Sequence[torch.Tensor], labels: Sequence[str], ncol: int | None = None
) -> bytes:
    """Stacked image grids (one per entry of ``rows``, values in [0, 1]) with labels."""
    return figure_png(image_rows_figure(rows, labels, ncol))


def plot_traversal_images(
    images: torch.Tensor, dims: Sequence[int], values: np.ndarray, note: str = ""
) -> bytes:
    """Grid of decoded traversals: ``images`` ``(len(dims), V, C, H, W)``, one row per
    latent dimension, one column per value (values of each row: ``values[i]``)."""
    plt = pyplot()
    n_dims, n_values = images.shape[:2]
    values = np.broadcast_to(np.asarray(values, dtype=float), (n_dims, n_values))
    fig, axes = plt.subplots(
        n_dims,
        1,
        figsize=(max(4.0, 0.55 * n_values + 1.2), 0.62 * n_dims + 0.6),
        squeeze=False,
    )
    for i, ax in enumerate(axes[:, 0]):
        ax.imshow(
            image_grid(images[i], ncol=n_values),
            cmap="gray",
            vmin=0,
            vmax=1,
            interpolation="nearest",
        )
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(False)
        ax.set_ylabel(
            f"z[{dims[i]}]\n{values[i, 0]:.2g} to {values[i, -1]:.2g}",
            rotation=0,
            ha="right",
            va="center",
            fontsize=8,
        )
    title = "each row varies one coordinate, left to right"
    fig.suptitle(title + (f" ({note})" if note else ""), fontsize=9)
    fig.tight_layout()
    return figure_png(fig)


def plot_traversal_features(
    decoded: np.ndarray,
    dims: Sequence[int],
    values: np.ndarray,
    max_features: int = 4,
    names: Sequence[str] | None = None,
) -> bytes:
    """Tabular data: decoded features (``decoded`` ``(len(dims), V, F)``) against the
    traversed coordinate's value, one panel per latent dimension (lines labelled with the
    features' ``names`` where given)."""
    plt = pyplot()
    n_dims, n_values, n_feat = decoded.shape
    labels = feature_labels(names, min(max_features, n_feat))
    values = np.broadcast_to(np.asarray(values, dtype=float), (n_dims, n_values))
    ncol = min(4, n_dims)
    nrow = math.ceil(n_dims / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.5 * nrow), squeeze=False)
    for i in range(nrow * ncol):
        ax = axes.flat[i]
        if i >= n_dims:
            ax.axis("off")
            continue
        for f in range(min(max_features, n_feat)):
            ax.plot(values[i], decoded[i, :, f], label=labels[f])
        ax.set_title(f"z[{dims[i]}]", fontsize=9)
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    fig.supxlabel("value of the traversed coordinate", fontsize=9)
    fig.supylabel("decoded mean E[x|z]", fontsize=9)
    fig.tight_layout()
    return figure_png(fig)


def plot_interpolation_features(
    linear: np.ndarray,
    spherical: np.ndarray,
    t: np.ndarray,
    max_features: int = 4,
    names: Sequence[str] | None = None,
) -> bytes:
    """Tabular data: decoded features along the linear (solid) and spherical (dashed)
    paths (``(T, F)`` each) against t (labelled with the features' ``names`` where given)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    n = min(max_features, linear.shape[1])
    labels = feature_labels(names, n)
    for f in range(n):
        (line,) = ax.plot(t, linear[:, f], label=f"{labels[f]}, linear")
        ax.plot(t, spherical[:, f], ls="--", color=line.get_color(), label=f"{labels[f]}, slerp")
    ax.set_xlabel("t")
    ax.set_ylabel("decoded mean E[x|z(t)]")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return figure_png(fig)


def plot_path_norms(linear: torch.Tensor, spherical: torch.Tensor, t: np.ndarray) -> bytes:
    """||z(t)|| along the linear and spherical paths."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 2.8))
    ax.plot(t, linear.norm(dim=-1).numpy(), marker=".", label="linear")
    ax.plot(t, spherical.norm(dim=-1).numpy(), marker=".", label="spherical (slerp)")
    ax.set_xlabel("t")
    ax.set_ylabel("||z(t)||")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return figure_png(fig)


def plot_latent_2d(
    mu: np.ndarray, labels: np.ndarray | None = None, title: str = "posterior means"
) -> bytes:
    """Scatter of the codes ``mu`` ``(N, L)`` in two dimensions (see :func:`project_2d`),
    coloured by ``labels`` when given."""
    plt = pyplot()
    xy, (xlabel, ylabel) = project_2d(mu)
    fig, ax = plt.subplots(figsize=(5.6, 4.6))
    if labels is not None:
        labels = np.asarray(labels)
        classes = np.unique(labels)
        if len(classes) <= 20:
            cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
            for k, c in enumerate(classes):
                m = labels == c
                ax.scatter(xy[m, 0], xy[m, 1], s=9, color=cmap(k % cmap.N), label=str(c))
            ax.legend(
                fontsize=7,
                title="label",
                title_fontsize=8,
                markerscale=1.5,
                loc="center left",
                bbox_to_anchor=(1.0, 0.5),
            )
        else:
            sc = ax.scatter(xy[:, 0], xy[:, 1], s=9, c=labels.astype(float), cmap="viridis")
            fig.colorbar(sc, ax=ax, label="label")
    else:
        ax.scatter(xy[:, 0], xy[:, 1], s=9, alpha=0.7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return figure_png(fig)


def plot_kl_per_dim(
    kl: Sequence[float], activity: Sequence[float] | None = None, threshold: float = 0.01
) -> bytes:
    """Bar chart of the KL per latent dimension (nats), active units highlighted."""
    plt = pyplot()
    kl = np.asarray(kl, dtype=float)
    dims = np.arange(len(kl))
    active = (
        np.asarray(activity, dtype=float) > threshold
        if activity is not None
        else np.ones(len(kl), dtype=bool)
    )
    fig, ax = plt.subplots(figsize=(max(4.5, 0.28 * len(kl) + 1.5), 3.2))
    for mask, color, label in ((active, "C0", "active unit"), (~active, "0.7", "inactive")):
        if mask.any():
            ax.bar(dims[mask], kl[mask], color=color, label=label)
    ax.set_xlabel("latent dimension")
    ax.set_ylabel("KL (nats per data point)")
    if len(kl) <= 32:
        ax.set_xticks(dims)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return figure_png(fig)


def plot_feature_sd(
    sd: np.ndarray, max_features: int = 40, names: Sequence[str] | None = None
) -> bytes:
    """Tabular data: mean posterior predictive sd of each feature over data points (the
    bars labelled with the features' ``names`` where given)."""
    plt = pyplot()
    sd = np.asarray(sd, dtype=float).reshape(sd.shape[0], -1).mean(0)[:max_features]
    named = names is not None and len(names) >= len(sd)
    height = 3.0 + (0.06 * max(len(str(n)) for n in names[: len(sd)]) if named else 0.0)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.3 * len(sd) + 1.5), height))
    ax.bar(np.arange(len(sd)), sd)
    if named:
        ax.set_xticks(np.arange(len(sd)))
        ax.set_xticklabels(feature_labels(names, len(sd)), rotation=90, fontsize=7)
    ax.set_xlabel("feature")
    ax.set_ylabel("sd of E[x|z] over z ~ q(z|x)")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return figure_png(fig)


def scatter_matrix_png(
    sets: dict[str, torch.Tensor], max_features: int = 4, names: Sequence[str] | None = None
) -> bytes:
    """PNG bytes of :func:`pyrovae.plotting.save_scatter_matrix`."""
    return file_png(save_scatter_matrix, sets, max_features=max_features, names=names)
