r"""Figures and numbers of the tutorial (docs/tutorial.md), from pyrovae's own models.

Every model is fitted on the built-in 8x8 digits with the Python API, so the
whole script runs in a few minutes on two CPU cores:

1. an autoencoder and a VAE with a 2-D code: point codes versus posteriors, and
   the decoder evaluated on a grid over the code plane;
2. the reparameterization trick with autograd: on the trained guide, and the
   reparameterized versus the score-function (REINFORCE) gradient estimator of
   d/dmu E[(z - c)^2] = 2 (mu - c) and d/dsigma E[(z - c)^2] = 2 sigma;
3. the ELBO's two terms during training, and log p(x) - ELBO = KL(q(z|x) || p(z|x))
   per test image, with log p(x) both importance-sampled and computed by
   quadrature over the 2-D code plane;
4. beta-VAEs with beta in {0.25, 0.5, 1, 2, 4}: rate (KL) against distortion
   (minus the reconstruction term), reconstructions and samples;
5. limitations: a fixed-variance Gaussian likelihood against Bernoulli and
   continuous Bernoulli ones, and the standard Normal prior's holes against
   learned mixture (mog) and VampPrior (vamp) priors.

Usage::

    python examples/tutorial_figures.py [OUTPUT_DIR] [--epochs N] [--hidden H]
        [--train N] [--test N] [--samples K] [--grid G] [--draws N]

Where the PNGs go (first rule that applies):

* ``OUTPUT_DIR`` if given;
* ``$PYROVAE_TUTORIAL_FIGURES`` if set;
* ``./tutorial-figures`` in the current folder if ``PYROVAE_EXAMPLE_EPOCHS`` is
  set (a quick run, as in the test suite, never overwrites the committed figures);
* otherwise ``docs/figures/tutorial`` of the repository holding this script.

Epochs: ``--epochs``, else ``PYROVAE_EXAMPLE_EPOCHS``, else 150 (no early
stopping, so that every model trains for the same budget).

The other options shrink the computations for a quick run (the defaults make the
figures of the tutorial):

``--hidden``
    Width of the one hidden layer of every encoder and decoder (default 256).
``--train``, ``--test``
    Use only the first N training or test images (default: all of them).
``--samples``
    The largest number K of importance samples for log p(x) in section 3 (default
    5000; the smaller K of the table are those of 1, 10, 100, 1000 below it); the
    ELBO's particles and section 5b's log p(x) use at most 1000.
``--grid``
    Points per axis of the quadrature grid for log p(x) in section 3 (default 401).
``--draws``
    Draws of the gradient estimators in section 2 (default 100000).

References: Kingma & Welling (2014), Auto-encoding variational Bayes; Rezende
et al. (2014), Stochastic backpropagation; Williams (1992), REINFORCE; Burda et
al. (2016), Importance weighted autoencoders; Higgins et al. (2017), beta-VAE;
Alemi et al. (2018), Fixing a broken ELBO; Loaiza-Ganem & Cunningham (2019),
The continuous Bernoulli; Hoffman & Johnson (2016), ELBO surgery; Tomczak &
Welling (2018), VAE with a VampPrior.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pyro.distributions as dist  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Ellipse, Rectangle  # noqa: E402

from pyrovae.analysis import log_likelihood  # noqa: E402
from pyrovae.api import AE, VAE  # noqa: E402
from pyrovae.data import load_data  # noqa: E402
from pyrovae.plotting import image_grid  # noqa: E402

EPOCHS_ENV = "PYROVAE_EXAMPLE_EPOCHS"
OUTPUT_ENV = "PYROVAE_TUTORIAL_FIGURES"
DEFAULT_EPOCHS = 150
QUICK_OUTPUT = "tutorial-figures"
BETAS = (0.25, 0.5, 1.0, 2.0, 4.0)
DPI = 80

#: Shared settings of every model: only what a section is about changes.
SHARED = {"hidden": (256,), "patience": 0, "seed": 0}


class Sizes(NamedTuple):
    """How much each section computes; the defaults make the tutorial's figures.

    Attributes
    ----------
    epochs : int
        Training epochs of every model.
    hidden : int
        Width of the one hidden layer of every network.
    samples : int
        The largest number of importance samples for log p(x) (section 3).
    grid : int
        Points per axis of the quadrature grid (section 3).
    draws : int
        Draws of the gradient estimators (section 2).
    """

    epochs: int = DEFAULT_EPOCHS
    hidden: int = SHARED["hidden"][0]
    samples: int = 5000
    grid: int = 401
    draws: int = 100_000

    def model_options(self, **options) -> dict:
        """:data:`SHARED` with this hidden width and epoch budget, and ``options``."""
        return {**SHARED, "hidden": (self.hidden,), "epochs": self.epochs, **options}

    @property
    def particles(self) -> int:
        """Particles of the ELBO and samples of log p(x) where 1000 are enough."""
        return min(1000, self.samples)

    @property
    def ks(self) -> tuple[int, ...]:
        """The importance-sample counts K of section 3's table, ending at ``samples``."""
        return tuple(k for k in (1, 10, 100, 1000) if k < self.samples) + (self.samples,)


def first_rows(data, train: int | None = None, test: int | None = None):
    """``data`` with only its first ``train`` training and ``test`` test rows (and
    labels); None keeps a split whole."""
    parts = {}
    for split, n in (("train", train), ("test", test)):
        if n is not None:
            parts[split] = data.split(split)[:n]
            labels = data.labels(split)
            if labels is not None:
                parts[f"y_{split}"] = labels[:n]
    return dataclasses.replace(data, **parts)


# ---------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------
def output_dir(arg: str | None, environ: Mapping[str, str], script: str | Path = __file__) -> Path:
    """The folder for the figures (see the module docstring for the rule)."""
    if arg:
        return Path(arg)
    if environ.get(OUTPUT_ENV):
        return Path(environ[OUTPUT_ENV])
    if environ.get(EPOCHS_ENV):
        return Path.cwd() / QUICK_OUTPUT
    return Path(script).resolve().parents[1] / "docs" / "figures" / "tutorial"


def epoch_budget(arg: int | None, environ: Mapping[str, str]) -> int:
    """``--epochs``, else ``$PYROVAE_EXAMPLE_EPOCHS``, else :data:`DEFAULT_EPOCHS`."""
    if arg is not None:
        return int(arg)
    return int(environ.get(EPOCHS_ENV) or DEFAULT_EPOCHS)


def _save(fig, out: Path, name: str) -> Path:
    """Save ``fig`` as a 256-colour PNG (small enough to commit) and report its size."""
    from PIL import Image

    path = out / name
    buf = io.BytesIO()
    fig.savefig(buf, dpi=DPI)
    plt.close(fig)
    buf.seek(0)
    image = Image.open(buf).convert("RGB")
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"  wrote {path.name} ({path.stat().st_size // 1024} kB)")
    return path


# ---------------------------------------------------------------------------
# small computations (tested in tests/test_tutorial.py)
# ---------------------------------------------------------------------------
def gradient_estimates(
    mu: float, sigma: float, c: float, n: int, seed: int = 0
) -> dict[str, torch.Tensor]:
    r"""Per-draw estimates of the gradient of E_{z ~ N(mu, sigma^2)}[(z - c)^2].

    Each of the ``n`` draws gets its own copy of ``mu`` and ``sigma`` so that
    autograd returns one gradient per draw.

    * reparameterized: z = mu + sigma * eps, gradient of (z - c)^2 itself;
    * score function (REINFORCE): (z - c)^2 * grad log N(z; mu, sigma^2) with
      z detached (no path from the parameters to the sample).

    Returns
    -------
    dict
        ``reparam_mu``, ``reparam_sigma``, ``score_mu``, ``score_sigma``
        (each ``(n,)``) and the noise ``eps``.
    """
    gen = torch.Generator().manual_seed(seed)
    eps = torch.randn(n, generator=gen, dtype=torch.float64)
    loc = torch.full((n,), float(mu), dtype=torch.float64, requires_grad=True)
    scale = torch.full((n,), float(sigma), dtype=torch.float64, requires_grad=True)
    z = loc + scale * eps
    ((z - c) ** 2).sum().backward()
    out = {"reparam_mu": loc.grad.clone(), "reparam_sigma": scale.grad.clone(), "eps": eps}
    loc.grad = scale.grad = None
    z_fixed = z.detach()
    f = (z_fixed - c) ** 2
    (f * dist.Normal(loc, scale).log_prob(z_fixed)).sum().backward()
    out["score_mu"], out["score_sigma"] = loc.grad.clone(), scale.grad.clone()
    return out


def exact_gradient(mu: float, sigma: float, c: float) -> tuple[float, float]:
    """d/dmu and d/dsigma of E[(z - c)^2] = (mu - c)^2 + sigma^2."""
    return 2.0 * (mu - c), 2.0 * sigma


def guide_gradients(module, x: torch.Tensor, seed: int = 0) -> dict[str, object]:
    """Backpropagate one Monte Carlo reconstruction term through a VAE's guide.

    z = mu(x) + sigma(x) * eps is built by hand from the guide head's
    ``loc_scale`` (what ``q.rsample()`` does), and, for comparison, z is drawn
    with ``q.sample()``, which has no path back to the encoder.
    """
    module.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    loc, scale = module.guide_head.loc_scale(module.encoder(x))
    loc.retain_grad()
    scale.retain_grad()
    eps = torch.randn_like(loc)
    z = loc + scale * eps
    module.decode(z).log_prob(x).sum().backward()
    first = next(module.encoder.parameters())
    out: dict[str, object] = {
        "eps_is_leaf": eps.is_leaf,
        "eps_requires_grad": eps.requires_grad,
        "eps_grad": eps.grad,
        "loc_grad_norm": float(loc.grad.norm()),
        "scale_grad_norm": float(scale.grad.norm()),
        "encoder_grad_norm": float(first.grad.norm()),
    }
    module.zero_grad(set_to_none=True)
    z_plain = module.encode(x).sample()
    module.decode(z_plain).log_prob(x).sum().backward()
    out["sample_requires_grad"] = z_plain.requires_grad
    out["sample_encoder_grad"] = first.grad
    out["sample_decoder_grad_norm"] = float(next(module.decoder.parameters()).grad.norm())
    module.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    z_r = module.encode(x).rsample()
    torch.manual_seed(seed)
    out["rsample_matches"] = bool(torch.allclose(z_r, z))
    return out


def latent_grid(lim: float, n: int) -> tuple[torch.Tensor, float]:
    """An ``n x n`` grid over [-lim, lim]^2 as ``(n*n, 2)`` points, and the cell area."""
    g = torch.linspace(-lim, lim, n)
    zz = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    return zz, float((g[1] - g[0]) ** 2)


@torch.no_grad()
def grid_log_joint(module, x: torch.Tensor, z: torch.Tensor, chunk: int = 8) -> torch.Tensor:
    """log p(x_n, z_g) = log p(x_n | z_g) + log p(z_g) for every row and grid point, ``(N, G)``."""
    module.eval()
    px = module.decode(z)  # batch (G,)
    log_prior = module.prior_distribution().log_prob(z)
    rows = [px.log_prob(x[i : i + chunk].unsqueeze(1)) for i in range(0, x.shape[0], chunk)]
    return torch.cat(rows) + log_prior


@torch.no_grad()
def grid_log_marginal(module, x: torch.Tensor, lim: float = 5.0, n: int = 401) -> torch.Tensor:
    """log p(x) = log int p(x|z) p(z) dz by the midpoint rule on a 2-D grid, ``(N,)``.

    Exact up to the grid's resolution and the mass outside [-lim, lim]^2; only for
    a 2-D code.
    """
    z, area = latent_grid(lim, n)
    return torch.logsumexp(grid_log_joint(module, x, z), dim=1) + math.log(area)


def aggregate_log_density(loc: torch.Tensor, scale: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """log q(z) of the aggregate posterior q(z) = (1/N) sum_n N(z; loc_n, diag scale_n^2).

    ``loc`` and ``scale`` are ``(N, L)``; ``z`` is ``(M, L)``; returns ``(M,)``.
    """
    q = dist.Normal(loc, scale).to_event(1)
    out = [
        torch.logsumexp(q.log_prob(z[i : i + 256].unsqueeze(1)), dim=1)
        for i in range(0, z.shape[0], 256)
    ]
    return torch.cat(out) - math.log(loc.shape[0])


def hole_fraction(
    loc: torch.Tensor, scale: torch.Tensor, z_prior: torch.Tensor, level: float = 0.05, seed=0
) -> tuple[float, torch.Tensor]:
    """Fraction of prior draws that land in the aggregate posterior's holes.

    A hole is where the aggregate posterior's density is below its own
    ``level``-quantile (the density value that a fraction ``level`` of its own
    draws fall below), so a prior equal to the aggregate posterior gives about
    ``level``. Returns the fraction and a boolean mask over ``z_prior``.
    """
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(loc.shape[0], (4000,), generator=gen)
    z_agg = loc[idx] + scale[idx] * torch.randn(loc[idx].shape, generator=gen)
    threshold = torch.quantile(aggregate_log_density(loc, scale, z_agg), level)
    mask = aggregate_log_density(loc, scale, z_prior) < threshold
    return float(mask.float().mean()), mask


@torch.no_grad()
def prior_holes(vae, x_train: torch.Tensor, n: int = 2000, seed: int = 0) -> tuple[float, dict]:
    """:func:`hole_fraction` of ``n`` draws from a fitted VAE's prior, against the
    aggregate posterior of ``x_train``; also returns the pieces for plotting."""
    q = vae.encode(x_train)
    torch.manual_seed(seed)
    z_prior = vae.module_.sample_latent(n)
    frac, mask = hole_fraction(q.mean, q.stddev, z_prior, seed=seed)
    return frac, {"loc": q.mean, "scale": q.stddev, "z_prior": z_prior, "hole_mask": mask}


def sharpness(x: torch.Tensor) -> float:
    """Mean absolute difference between horizontally and vertically adjacent pixels."""
    x = x.reshape(x.shape[0], -1, *x.shape[-2:])
    dh = (x[..., 1:, :] - x[..., :-1, :]).abs().mean()
    dw = (x[..., :, 1:] - x[..., :, :-1]).abs().mean()
    return float((dh + dw) / 2)


# ---------------------------------------------------------------------------
# plotting helpers
# ---------------------------------------------------------------------------
def _imshow(ax, images: torch.Tensor, ncol: int, title: str = "") -> None:
    ax.imshow(image_grid(images, ncol=ncol), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title, fontsize=9, loc="left")
    ax.axis("off")


def cell_centres(lo: np.ndarray, hi: np.ndarray, n: int) -> torch.Tensor:
    """Centres of the n x n cells of the box [lo, hi] as ``(n*n, 2)`` codes, in reading
    order: the first row is the top one (largest z[1]), each row runs left to right."""
    c0 = lo[0] + (np.arange(n) + 0.5) * (hi[0] - lo[0]) / n
    c1 = lo[1] + (np.arange(n)[::-1] + 0.5) * (hi[1] - lo[1]) / n
    zz = np.stack(np.meshgrid(c0, c1, indexing="xy"), -1).reshape(-1, 2)
    return torch.as_tensor(zz, dtype=torch.float32)


def empty_cells(codes: np.ndarray, lo: np.ndarray, hi: np.ndarray, n: int) -> np.ndarray:
    """Boolean ``(n*n,)`` in the order of :func:`cell_centres`: the cell holds no code."""
    col = np.floor((codes[:, 0] - lo[0]) / (hi[0] - lo[0]) * n).astype(int)
    row = n - 1 - np.floor((codes[:, 1] - lo[1]) / (hi[1] - lo[1]) * n).astype(int)
    inside = (col >= 0) & (col < n) & (row >= 0) & (row < n)
    empty = np.ones((n, n), dtype=bool)
    empty[row[inside], col[inside]] = False
    return empty.reshape(-1)


def nearest_mse(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-pixel squared distance of each image to its nearest image in ``reference``."""
    a, b = images.reshape(images.shape[0], -1), reference.reshape(reference.shape[0], -1)
    return torch.cdist(a, b).min(dim=1).values ** 2 / a.shape[1]


# ---------------------------------------------------------------------------
# sections
# ---------------------------------------------------------------------------
def section_encoding(data, out: Path, sizes: Sizes):
    """1. A deterministic (AE) and a probabilistic (VAE) encoder with a 2-D code."""
    print("\n== 1. Deterministic versus probabilistic encoding (2-D code) ==")
    kw = sizes.model_options(latent_dim=2, likelihood="bernoulli")
    ae = AE(**kw).fit(data.train, X_val=data.val)
    vae = VAE(**kw).fit(data.train, X_val=data.val)
    print(
        f"  trained AE and VAE for {sizes.epochs} epochs "
        f"({ae.fit_time_:.0f} s, {vae.fit_time_:.0f} s)"
    )
    y = data.y_train.numpy()
    codes = ae.encode(data.train).mean.numpy()
    q = vae.encode(data.train)
    mu, sd = q.mean.numpy(), q.stddev.numpy()
    print(
        f"  AE codes span z0 in [{codes[:, 0].min():.1f}, {codes[:, 0].max():.1f}], "
        f"z1 in [{codes[:, 1].min():.1f}, {codes[:, 1].max():.1f}]"
    )
    print(
        f"  VAE posterior means span z0 in [{mu[:, 0].min():.1f}, {mu[:, 0].max():.1f}], "
        f"z1 in [{mu[:, 1].min():.1f}, {mu[:, 1].max():.1f}]; posterior sd: median "
        f"{np.median(sd):.2f} (5%-95%: {np.quantile(sd, 0.05):.2f}-{np.quantile(sd, 0.95):.2f})"
    )
    for name, est in (("AE", ae), ("VAE", vae)):
        ev = est.evaluate(data.test, particles=10)
        mse = float(((est.reconstruct(data.test) - data.test) ** 2).mean())
        print(f"  {name}: test log p(x|z) {ev['recon']:.2f} nats/image, MSE {mse:.4f}")

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, pts, title in (
        (axes[0], codes, "AE: one point code per image"),
        (axes[1], mu, "VAE: q(z|x) means and 1-sd ellipses"),
    ):
        sc = ax.scatter(pts[:, 0], pts[:, 1], c=y, cmap="tab10", s=4, vmin=-0.5, vmax=9.5)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("z[0]")
        ax.set_ylabel("z[1]")
    cmap = plt.get_cmap("tab10")
    for i in range(0, len(mu), 8):
        axes[1].add_patch(
            Ellipse(mu[i], 2 * sd[i, 0], 2 * sd[i, 1], fill=False, lw=0.5, color=cmap(int(y[i])))
        )
    fig.colorbar(sc, ax=axes, ticks=range(10), label="digit", fraction=0.03)
    _save(fig, out, "01_codes.png")

    n = 12
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.4))
    for ax, est, pts, name in ((axes[0], ae, codes, "AE"), (axes[1], vae, mu, "VAE")):
        lo, hi = np.quantile(pts, 0.005, axis=0), np.quantile(pts, 0.995, axis=0)
        empty = empty_cells(pts, lo, hi, n)
        images = est.decode(cell_centres(lo, hi, n)).mean
        dist_nn = nearest_mse(images, data.train)
        print(
            f"  {name}: {int(empty.sum())} of {n * n} cells of a {n}x{n} grid over the codes' box "
            f"[{lo[0]:.1f}, {hi[0]:.1f}] x [{lo[1]:.1f}, {hi[1]:.1f}] hold no training code; "
            f"decoded cell centres, squared distance per pixel to the nearest training image: "
            f"median {float(dist_nn[~torch.as_tensor(empty)].median()):.4f} (cells with codes), "
            f"{float(dist_nn[torch.as_tensor(empty)].median()):.4f} (empty cells)"
        )
        _imshow(ax, images, ncol=n)
        for k in np.flatnonzero(empty):
            r, c = divmod(int(k), n)
            ax.add_patch(Rectangle((c * 9 + 0.5, r * 9 + 0.5), 8, 8, fill=False, ec="r", lw=1.0))
        ax.set_title(
            f"{name} decoder on a {n}x{n} grid over the codes' box\n"
            f"red: cells holding no training code ({int(empty.sum())} of {n * n})",
            fontsize=9,
        )
    fig.tight_layout()
    _save(fig, out, "01_decoded_grid.png")
    return ae, vae


def section_reparam(vae, data, out: Path, sizes: Sizes) -> None:
    """2. The reparameterization trick with autograd."""
    print("\n== 2. The reparameterization trick ==")
    g = guide_gradients(vae.module_, data.test[:64])
    vae.module_.eval()
    print(
        f"  eps: leaf={g['eps_is_leaf']}, requires_grad={g['eps_requires_grad']}, "
        f"grad after backward={g['eps_grad']}"
    )
    print(
        f"  |d recon / d mu| = {g['loc_grad_norm']:.2f}, |d recon / d sigma| = "
        f"{g['scale_grad_norm']:.2f}, |d recon / d (first encoder weights)| = "
        f"{g['encoder_grad_norm']:.2f}"
    )
    print(f"  q.rsample() equals mu + sigma * eps drawn from the same seed: {g['rsample_matches']}")
    print(
        f"  with q.sample() instead: z.requires_grad={g['sample_requires_grad']}, encoder "
        f"grad={g['sample_encoder_grad']}, decoder grad norm {g['sample_decoder_grad_norm']:.2f}"
    )

    mu, sigma, c, n = 0.0, 1.0, 2.0, sizes.draws
    est = gradient_estimates(mu, sigma, c, n)
    exact = exact_gradient(mu, sigma, c)
    print(f"  E[(z - c)^2], z ~ N({mu}, {sigma}^2), c = {c}; {n:,} draws, one gradient per draw:")
    print(f"  {'parameter':<9} {'exact':>6} {'estimator':<15} {'mean':>8} {'± s.e.':>7} {'var':>8}")
    for j, p in enumerate(("mu", "sigma")):
        for kind in ("reparam", "score"):
            v = est[f"{kind}_{p}"]
            label = "reparameterized" if kind == "reparam" else "score function"
            print(
                f"  {p:<9} {exact[j]:>6.2f} {label:<15} {float(v.mean()):>8.3f} "
                f"{float(v.std() / math.sqrt(n)):>7.3f} {float(v.var()):>8.2f}"
            )
    ratio_mu = float(est["score_mu"].var() / est["reparam_mu"].var())
    ratio_s = float(est["score_sigma"].var() / est["reparam_sigma"].var())
    print(f"  variance ratio score / reparameterized: mu {ratio_mu:.0f}x, sigma {ratio_s:.0f}x")

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, p, ex in zip(axes, ("mu", "sigma"), exact, strict=True):
        r, s = est[f"reparam_{p}"].numpy(), est[f"score_{p}"].numpy()
        lo, hi = np.quantile(s, [0.005, 0.995])
        bins = np.linspace(min(lo, r.min()), max(hi, r.max()), 120)
        ax.hist(s, bins=bins, density=True, alpha=0.55, label=f"score function (var {s.var():.0f})")
        ax.hist(r, bins=bins, density=True, alpha=0.7, label=f"reparameterized (var {r.var():.1f})")
        ax.axvline(ex, color="k", lw=1, ls="--", label=f"exact gradient {ex:g}")
        ax.set_yscale("log")
        ax.set_xlabel(f"per-draw estimate of d/d{p} E[(z - {c:g})^2]")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("density (log scale)")
    fig.suptitle(f"Two unbiased gradient estimators, z ~ N({mu:g}, {sigma:g}^2)", fontsize=10)
    fig.tight_layout()
    _save(fig, out, "02_gradient_estimators.png")


def section_elbo(vae, data, out: Path, sizes: Sizes) -> None:
    """3. The ELBO's two terms and its gap to log p(x)."""
    print("\n== 3. The ELBO as a dual objective ==")
    h = vae.history_
    ep = [r["epoch"] for r in h]
    for r in [h[0], h[min(9, len(h) - 1)], h[min(49, len(h) - 1)], h[-1]]:
        print(
            f"  epoch {r['epoch']:>3}: val recon {r['val_recon']:7.2f}, val KL {r['val_kl']:5.2f}, "
            f"val ELBO {r['val_elbo']:7.2f}"
        )
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.3))
    axes[0].plot(ep, [-r["train_recon"] for r in h], label="train")
    axes[0].plot(ep, [-r["val_recon"] for r in h], label="validation")
    axes[0].set_ylabel("-E_q[log p(x|z)] (nats)")
    axes[0].set_title("distortion: minus the reconstruction term", fontsize=10)
    axes[1].plot(ep, [r["train_kl"] for r in h], label="train")
    axes[1].plot(ep, [r["val_kl"] for r in h], label="validation")
    axes[1].set_ylabel("KL(q(z|x) || p(z)) (nats)")
    axes[1].set_title("rate: the KL term", fontsize=10)
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, out, "03_elbo_terms.png")

    x = data.test
    torch.manual_seed(0)
    ev = vae.evaluate(x, particles=10)
    print(
        f"  test: ELBO {ev['elbo']:.2f} = recon {ev['recon']:.2f} - KL {ev['kl']:.2f} "
        f"(10 particles, ± {ev['elbo_se']:.2f} s.e. over images)"
    )
    elbo = vae.elbo(x, particles=sizes.particles)
    exact = grid_log_marginal(vae.module_, x, n=sizes.grid)
    ks = sizes.ks
    is_means = {}
    for k in ks:
        torch.manual_seed(0)
        ll = log_likelihood(vae.module_, x, samples=k)
        is_means[k] = float(ll.mean())
    ll_best = ll  # the largest K
    gap = exact - elbo
    print(f"  mean over {len(x)} test images (nats):")
    label = f"ELBO ({sizes.particles} particles)"
    print(f"    {label:<38} {float(elbo.mean()):8.3f}")
    for k in ks:
        print(f"    importance-sampled log p(x), K = {k:<5}  {is_means[k]:8.3f}")
    label = f"log p(x) by quadrature ({sizes.grid}x{sizes.grid} grid)"
    print(f"    {label:<38} {float(exact.mean()):8.3f}")
    print(
        f"  gap log p(x) - ELBO = KL(q(z|x) || p(z|x)): mean {float(gap.mean()):.3f}, median "
        f"{float(gap.median()):.3f}, min {float(gap.min()):.3f}, max {float(gap.max()):.3f}"
    )
    diff = exact - ll_best
    worst = int(diff.abs().argmax())
    print(
        f"  quadrature - IS(K={ks[-1]}) per image: median |difference| "
        f"{float(diff.abs().median()):.4f}, 95% quantile {float(diff.abs().quantile(0.95)):.3f}, "
        f"largest {float(diff[worst]):.3f} on test image {worst} (gap {float(gap[worst]):.2f})"
    )

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    axes[0].hist(gap.numpy(), bins=30, color="C2")
    axes[0].set_xlabel("log p(x) - ELBO  (nats)")
    axes[0].set_ylabel("test images")
    axes[0].set_title("KL(q(z|x) || p(z|x)) per image", fontsize=10)
    axes[1].plot(ks, [is_means[k] for k in ks], "o-", label="importance sampling, K draws")
    axes[1].axhline(float(exact.mean()), color="k", ls="--", lw=1, label="quadrature")
    axes[1].axhline(float(elbo.mean()), color="C3", ls=":", lw=1.5, label="ELBO")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("K")
    axes[1].set_ylabel("mean over test images (nats)")
    axes[1].set_title("log p(x) estimates", fontsize=10)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    _save(fig, out, "03_elbo_gap.png")

    # the true posterior p(z|x) (grid) against q(z|x) for a typical and the worst image
    order = torch.argsort(gap)
    picks = [int(order[len(order) // 2]), int(order[-1])]
    q = vae.encode(x[picks])
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    for j, (ax, i) in enumerate(zip(axes, picks, strict=True)):
        m, s = q.mean[j].numpy(), q.stddev[j].numpy()
        # a window holding q's 3-sd box and the region where p(z|x) > 1e-3 of its peak
        z_all, _ = latent_grid(5.0, 201)
        lp = grid_log_joint(vae.module_, x[i : i + 1], z_all)[0]
        heavy = z_all[lp > lp.max() + math.log(1e-3)].numpy()
        lo = np.minimum(heavy.min(0), m - 3 * s) - 0.2
        hi = np.maximum(heavy.max(0), m + 3 * s) + 0.2
        g0 = torch.linspace(float(lo[0]), float(hi[0]), 161)
        g1 = torch.linspace(float(lo[1]), float(hi[1]), 161)
        zz = torch.stack(torch.meshgrid(g0, g1, indexing="ij"), -1).reshape(-1, 2)
        post = torch.exp(grid_log_joint(vae.module_, x[i : i + 1], zz)[0] - exact[i]).reshape(
            161, 161
        )
        ax.contourf(g0.numpy(), g1.numpy(), post.T.numpy(), levels=12, cmap="Blues")
        qd = torch.exp(dist.Normal(q.mean[j], q.stddev[j]).log_prob(zz).sum(-1)).reshape(161, 161)
        ax.contour(g0.numpy(), g1.numpy(), qd.T.numpy(), levels=5, colors="C3", linewidths=0.8)
        ax.set_title(
            f"test image {i}: log p(x) - ELBO = {float(gap[i]):.2f} nats\n"
            "blue: p(z|x) (grid); red: q(z|x)",
            fontsize=9,
        )
        ax.set_xlabel("z[0]")
        ax.set_ylabel("z[1]")
        inset = ax.inset_axes([0.78, 0.78, 0.2, 0.2])
        inset.imshow(x[i, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        inset.axis("off")
    fig.tight_layout()
    _save(fig, out, "03_posteriors.png")


def section_beta(data, out: Path, sizes: Sizes) -> dict[float, VAE]:
    """4. beta-VAEs: rate against distortion."""
    print("\n== 4. The beta trade-off (8-D code) ==")
    models: dict[float, VAE] = {}
    rows = []
    for beta in BETAS:
        vae = VAE(**sizes.model_options(latent_dim=8, likelihood="bernoulli", beta=beta))
        vae.fit(data.train, X_val=data.val)
        torch.manual_seed(0)
        ev = vae.evaluate(data.test, particles=10)
        q = vae.encode(data.train).mean
        active = int((q.var(0) > 0.01).sum())
        holes, _ = prior_holes(vae, data.train)
        models[beta] = vae
        rows.append((beta, -ev["recon"], ev["kl"], ev["elbo"], active, holes))
    print(
        f"  {'beta':>5} {'distortion':>10} {'rate':>6} {'ELBO':>8} {'active dims':>11} "
        f"{'prior draws in holes':>20}"
    )
    for beta, d, r, e, a, h in rows:
        print(f"  {beta:>5g} {d:>10.2f} {r:>6.2f} {e:>8.2f} {a:>7} / 8 {100 * h:>19.1f}%")
    print("  (test set, 10 particles; distortion = -E_q[log p(x|z)], rate = KL(q(z|x) || p(z)))")

    fig, ax = plt.subplots(figsize=(5.2, 4))
    d = np.array([r[1] for r in rows])
    r = np.array([r[2] for r in rows])
    ax.plot(r, d, "o-")
    for beta, ri, di in zip(BETAS, r, d, strict=True):
        ax.annotate(f"β={beta:g}", (ri, di), textcoords="offset points", xytext=(6, 4), fontsize=8)
    best = float(min(d + r))
    span = np.linspace(0, r.max() * 1.05, 50)
    ax.plot(span, best - span, "k:", lw=1, label=f"D + R = {best:.1f} (best -ELBO)")
    ax.set_xlabel("rate R = KL(q(z|x) || p(z))  (nats)")
    ax.set_ylabel("distortion D = -E_q[log p(x|z)]  (nats)")
    ax.set_ylim(d.min() - 2, d.max() + 2)
    ax.legend(fontsize=8)
    ax.set_title("β-VAEs on the test digits", fontsize=10)
    fig.tight_layout()
    _save(fig, out, "04_rate_distortion.png")

    x = data.test[:10]
    fig, axes = plt.subplots(len(BETAS) + 1, 2, figsize=(9, 1.05 * (len(BETAS) + 1) + 0.3))
    _imshow(axes[0, 0], x, ncol=10, title="test images")
    axes[0, 1].axis("off")
    for row, beta in enumerate(BETAS, start=1):
        vae = models[beta]
        torch.manual_seed(0)
        _imshow(axes[row, 0], vae.reconstruct(x), ncol=10, title=f"β={beta:g}: reconstructions")
        _imshow(axes[row, 1], vae.sample(10), ncol=10, title=f"β={beta:g}: samples from p(z)")
    fig.tight_layout()
    _save(fig, out, "04_beta_images.png")
    return models


#: Likelihoods compared in section 5a: (label, name, options).
LIKELIHOODS = (
    ("Gaussian σ=0.1", "gaussian", {"scale": 0.1}),
    ("Gaussian σ=0.3", "gaussian", {"scale": 0.3}),
    ("Gaussian σ=0.71", "gaussian", {"scale": 1 / math.sqrt(2)}),
    ("Gaussian, learned σ", "gaussian-learned", {"scale": 1 / math.sqrt(2)}),
    ("Bernoulli", "bernoulli", {}),
    ("continuous Bernoulli", "continuous-bernoulli", {}),
)


def section_likelihood(data, out: Path, sizes: Sizes, bernoulli: VAE) -> None:
    """5a. Blurry outputs: Gaussian likelihoods with a fixed scale against Bernoulli ones."""
    print("\n== 5a. Likelihoods: blur and the Gaussian's fixed scale (8-D code) ==")
    models = {}
    for label, name, opts in LIKELIHOODS:
        if name == "bernoulli":
            models[label] = bernoulli  # the beta = 1 model of section 4
            continue
        models[label] = VAE(
            **sizes.model_options(latent_dim=8, likelihood=name, likelihood_options=opts)
        ).fit(data.train, X_val=data.val)
    x = data.test
    print(
        f"  sharpness (mean |difference| of adjacent pixels) of the test images: {sharpness(x):.3f}"
    )
    print(
        f"  {'likelihood':<21} {'recon MSE':>9} {'sharpness: recon':>16} {'samples':>8} "
        f"{'KL':>6} {'active dims':>11} {'samples: NN dist':>16} {'in holes':>8}"
    )
    for label, vae in models.items():
        torch.manual_seed(0)
        rec = vae.reconstruct(x)
        samples = vae.sample(500)
        kl = vae.evaluate(x, particles=10)["kl"]
        mse = float(((rec - x) ** 2).mean())
        active = int((vae.encode(data.train).mean.var(0) > 0.01).sum())
        nn_dist = float(nearest_mse(samples, data.train).median())
        holes, _ = prior_holes(vae, data.train)
        print(
            f"  {label:<21} {mse:>9.4f} {sharpness(rec):>16.3f} {sharpness(samples):>8.3f} "
            f"{kl:>6.2f} {active:>7} / 8 {nn_dist:>16.4f} {100 * holes:>7.1f}%"
        )
    learned = models["Gaussian, learned σ"].module_.likelihood.scale.detach()
    print(f"  the learned σ went from 0.71 to {float(learned):.3f}")
    print(
        "  (sharpness: mean |difference| of adjacent pixels of E[x|z]; samples: 500 draws "
        "z ~ p(z); NN dist: median squared distance per pixel from a sample to the nearest "
        "training image)"
    )
    fig, axes = plt.subplots(len(models) + 1, 2, figsize=(9, 0.95 * (len(models) + 1) + 0.3))
    _imshow(axes[0, 0], x[:10], ncol=10, title="test images")
    axes[0, 1].axis("off")
    for row, (label, vae) in enumerate(models.items(), start=1):
        torch.manual_seed(0)
        _imshow(axes[row, 0], vae.reconstruct(x[:10]), 10, f"{label}: reconstructions E[x|z]")
        _imshow(axes[row, 1], vae.sample(10), 10, f"{label}: samples E[x|z], z ~ p(z)")
    fig.tight_layout()
    _save(fig, out, "05_likelihoods.png")


def prior_check(vae, data, seed: int = 0, samples: int = 1000) -> dict:
    """Test ELBO, log p(x) and KL, the aggregate posterior's KL from the prior, and the
    fraction of prior draws that land in holes (see :func:`prior_holes`); log p(x) with
    ``samples`` importance samples."""
    torch.manual_seed(seed)
    ev = vae.evaluate(data.test, particles=10)
    ll = float(vae.log_likelihood(data.test, samples=samples).mean())
    frac, parts = prior_holes(vae, data.train, seed=seed)
    loc, scale = parts["loc"], parts["scale"]
    with torch.no_grad():
        prior = vae.module_.prior_distribution()
        gen = torch.Generator().manual_seed(seed + 1)
        idx = torch.randint(loc.shape[0], (4000,), generator=gen)
        z_agg = loc[idx] + scale[idx] * torch.randn(4000, loc.shape[1], generator=gen)
        marginal_kl = float(
            (aggregate_log_density(loc, scale, z_agg) - prior.log_prob(z_agg)).mean()
        )
    return {
        "elbo": ev["elbo"],
        "log_px": ll,
        "kl": ev["kl"],
        "marginal_kl": marginal_kl,
        "holes": frac,
        "prior": prior,
        **parts,
    }


def _print_prior_rows(rows: dict[str, dict]) -> None:
    print(
        f"  {'prior':<7} {'test ELBO':>9} {'log p(x)':>9} {'KL':>6} {'KL(q(z)||p(z))':>15} "
        f"{'prior draws in holes':>21}"
    )
    for name, r in rows.items():
        print(
            f"  {name:<7} {r['elbo']:>9.2f} {r['log_px']:>9.2f} {r['kl']:>6.2f} "
            f"{r['marginal_kl']:>15.2f} {100 * r['holes']:>20.1f}%"
        )


def section_priors(data, out: Path, sizes: Sizes, normal2: VAE, normal8: VAE) -> None:
    """5b. The standard Normal prior's holes, and learned priors."""
    print("\n== 5b. Priors: holes in the aggregate posterior ==")
    kw = sizes.model_options(likelihood="bernoulli")
    mog = {"prior": "mog", "prior_options": {"components": 10}}
    models = {
        "normal": normal2,
        "mog": VAE(**kw, latent_dim=2, **mog).fit(data.train, X_val=data.val),
        "vamp": VAE(**kw, latent_dim=2, prior="vamp").fit(data.train, X_val=data.val),
    }
    rows = {name: prior_check(vae, data, samples=sizes.particles) for name, vae in models.items()}
    print("  2-D code:")
    _print_prior_rows(rows)
    models8 = {
        "normal": normal8,
        "mog": VAE(**kw, latent_dim=8, **mog).fit(data.train, X_val=data.val),
    }
    print("  8-D code (the normal model is the beta = 1 model of section 4):")
    _print_prior_rows(
        {name: prior_check(vae, data, samples=sizes.particles) for name, vae in models8.items()}
    )
    print(
        "  (hole: where the aggregate posterior q(z) = mean_n q(z|x_n) over the training "
        "images is below the 5% quantile of its density at its own draws; a prior equal "
        "to q(z) puts 5% of its draws there. KL(q(z)||p(z)): 4000 draws from q(z).)"
    )

    titles = {"normal": "N(0, I)", "mog": "mixture of 10 Gaussians", "vamp": "VampPrior (50)"}
    y = data.y_train.numpy()
    fig, axes = plt.subplots(1, 3, figsize=(11.5, 3.9))
    show = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))[:800].numpy()
    for ax, (name, r) in zip(axes, rows.items(), strict=True):
        loc = r["loc"].numpy()
        zp, hp = r["z_prior"][:300].numpy(), r["hole_mask"][:300].numpy()
        lo = np.minimum(np.quantile(loc, 0.002, 0), np.quantile(zp, 0.01, 0)) - 0.3
        hi = np.maximum(np.quantile(loc, 0.998, 0), np.quantile(zp, 0.99, 0)) + 0.3
        g0, g1 = np.linspace(lo[0], hi[0], 121), np.linspace(lo[1], hi[1], 121)
        zz = torch.as_tensor(np.stack(np.meshgrid(g0, g1), -1).reshape(-1, 2), dtype=torch.float32)
        with torch.no_grad():
            dens = r["prior"].log_prob(zz).exp().reshape(121, 121).numpy()
        ax.contour(g0, g1, dens, levels=8, colors="0.35", linewidths=0.7)
        ax.scatter(
            loc[show, 0], loc[show, 1], c=y[show], cmap="tab10", s=3, alpha=0.6, vmin=-0.5, vmax=9.5
        )
        ax.scatter(zp[~hp, 0], zp[~hp, 1], marker="+", c="k", s=14, lw=0.7, label="prior draws")
        ax.scatter(zp[hp, 0], zp[hp, 1], marker="x", c="r", s=14, lw=0.9, label="... in a hole")
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_title(f"prior {titles[name]}: {100 * r['holes']:.1f}% of draws in holes", fontsize=9)
        ax.set_xlabel("z[0]")
    axes[0].set_ylabel("z[1]")
    axes[0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    _save(fig, out, "05_priors.png")

    for name, vae in models.items():
        r = rows[name]
        decoded = vae.decode(r["z_prior"]).mean
        d = nearest_mse(decoded, data.train)
        m = r["hole_mask"]
        print(
            f"  {name} (2-D): decoded prior draws, squared distance per pixel to the nearest "
            f"training image: median {float(d[~m].median()):.4f} outside holes, "
            + (f"{float(d[m].median()):.4f} in holes ({int(m.sum())} draws)" if m.any() else "-")
        )

    fig, axes = plt.subplots(4, 1, figsize=(6, 4.1))
    for ax, (name, vae) in zip(axes[:3], models.items(), strict=True):
        z, holes = rows[name]["z_prior"][:16], rows[name]["hole_mask"][:16]
        _imshow(ax, vae.decode(z).mean, ncol=16, title=f"prior {titles[name]} (red: in a hole)")
        for k in np.flatnonzero(holes.numpy()):
            ax.add_patch(Rectangle((k * 9 + 0.5, 0.5), 8, 8, fill=False, ec="r", lw=1.0))
    r = rows["normal"]
    in_holes = r["z_prior"][r["hole_mask"]][:16]
    _imshow(
        axes[3], models["normal"].decode(in_holes).mean, ncol=16, title="N(0, I) draws in holes"
    )
    fig.tight_layout()
    _save(fig, out, "05_prior_samples.png")


def _at_least(low: int):
    """An argparse type: an int of at least ``low``."""

    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}; got {value}")
        return value

    return parse


def main(argv: Sequence[str] | None = None) -> None:
    defaults = Sizes()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", help="folder for the PNGs (see the docstring)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs per model")
    parser.add_argument(
        "--hidden", type=_at_least(1), default=defaults.hidden, help="hidden units of every network"
    )
    parser.add_argument(
        "--train", type=_at_least(100), default=None, help="use the first N training images"
    )
    parser.add_argument(
        "--test", type=_at_least(10), default=None, help="use the first N test images"
    )
    parser.add_argument(
        "--samples",
        type=_at_least(1),
        default=defaults.samples,
        metavar="K",
        help="largest number of importance samples for log p(x) in section 3",
    )
    parser.add_argument(
        "--grid",
        type=_at_least(3),
        default=defaults.grid,
        help="points per axis of the quadrature grid in section 3",
    )
    parser.add_argument(
        "--draws",
        type=_at_least(2),
        default=defaults.draws,
        help="draws of the gradient estimators in section 2",
    )
    args = parser.parse_args(argv)
    out = output_dir(args.output, os.environ)
    sizes = Sizes(
        epochs=epoch_budget(args.epochs, os.environ),
        hidden=args.hidden,
        samples=args.samples,
        grid=args.grid,
        draws=args.draws,
    )
    out.mkdir(parents=True, exist_ok=True)
    print(f"pyrovae tutorial figures -> {out} ({sizes.epochs} epochs per model)")
    t0 = time.perf_counter()
    data = first_rows(load_data("digits"), train=args.train, test=args.test)
    print(
        f"digits: {data.train.shape[0]} train, {data.val.shape[0]} validation, "
        f"{data.test.shape[0]} test images of 8x8 pixels in [0, 1]"
    )
    _, vae2 = section_encoding(data, out, sizes)
    section_reparam(vae2, data, out, sizes)
    section_elbo(vae2, data, out, sizes)
    betas = section_beta(data, out, sizes)
    section_likelihood(data, out, sizes, betas[1.0])
    section_priors(data, out, sizes, vae2, betas[1.0])
    print(f"\ndone in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
