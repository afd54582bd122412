r"""Uncertainty a person can look at, and an out-of-distribution score.

* Reconstruction uncertainty: for draws z_s ~ q(z|x) from the guide's joint posterior
  (``module.posterior_sample``), the mean and the per-pixel standard deviation over s
  of E[x | z_s] (how much the reconstruction moves with the posterior's uncertainty
  about z).
* Latent plot: posterior means of the first two latent dimensions, coloured by label,
  with ellipses of one posterior standard deviation (``module.posterior_moments``).
* Out-of-distribution score: s(x) = -log p(x) (importance-sampled); the AUROC of s
  for in-distribution test data against other data (1.0: perfect separation,
  0.5: chance). Likelihood-based OOD detection is known to fail for some pairs of
  data sets (Nalisnick et al. 2019), so report it per pair.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import sites
from ..inference.loglik import log_likelihood


@torch.no_grad()
def reconstruction_uncertainty(module, x: torch.Tensor, draws: int = 100):
    """(mean, sd) over posterior draws of E[x|z], each ``x.shape``."""
    was_training = module.training
    module.eval()
    try:
        z = module.code_of(module.posterior_sample(x, int(draws)))
        means = module.decode_rows(z, x).mean  # (S, n, *data_shape)
    finally:
        module.train(was_training)
    return means.mean(0), means.std(0)


def ood_scores(
    module, x_in: torch.Tensor, x_out: torch.Tensor, samples: int = 200, progress: bool = False
) -> dict:
    """AUROC of -log p(x) separating ``x_out`` (positive) from ``x_in`` (``progress``:
    bars over the importance sampling)."""
    from sklearn.metrics import roc_auc_score

    s_in = -log_likelihood(module, x_in, samples=samples, progress=progress).cpu().numpy()
    s_out = -log_likelihood(module, x_out, samples=samples, progress=progress).cpu().numpy()
    labels = np.r_[np.zeros_like(s_in), np.ones_like(s_out)]
    return {
        "auroc": float(roc_auc_score(labels, np.r_[s_in, s_out])),
        "score_in": s_in,
        "score_out": s_out,
    }


def plot_reconstruction_uncertainty(x, mean, sd, path) -> None:
    """Rows: inputs, reconstruction means, per-pixel sd maps (images only)."""
    from ..plotting import save_image_rows

    scale = float(sd.max()) or 1.0
    save_image_rows(
        path,
        [x, mean, sd / scale],
        ["input", "reconstruction mean", f"per-pixel sd (white = {scale:.2g})"],
    )


def plot_latent(module, x, labels, path, max_ellipses: int = 150) -> None:
    """Posterior means of z[0], z[1] coloured by label, with 1-sd ellipses."""
    from matplotlib.patches import Ellipse

    from ..plotting import pyplot

    plt = pyplot()
    with torch.no_grad():
        was_training = module.training
        module.eval()
        try:
            mu, sd = (t.cpu().numpy() for t in module.posterior_moments(x)[sites.LATENT])
        finally:
            module.train(was_training)
    if mu.shape[1] < 2:
        mu = np.c_[mu, np.zeros(len(mu))]
        sd = np.c_[sd, np.zeros(len(sd))]
    fig, ax = plt.subplots(figsize=(5, 4.5))
    from ..data.validation import class_labels

    labels = class_labels(labels)
    colors = labels.cpu().numpy() if labels is not None else "C0"
    cmap_name = "tab10" if labels is not None else None  # no colour map for one colour
    sc = ax.scatter(mu[:, 0], mu[:, 1], c=colors, cmap=cmap_name, s=8, zorder=3)
    cmap = plt.get_cmap("tab10")
    for i in range(min(len(mu), max_ellipses)):
        c = cmap(int(colors[i]) % 10) if labels is not None else "C0"
        ax.add_patch(
            Ellipse(mu[i, :2], 2 * sd[i, 0], 2 * sd[i, 1], fill=False, lw=0.6, color=c, alpha=0.6)
        )
    if labels is not None:
        fig.colorbar(sc, ax=ax, label="label")
    ax.set_xlabel("z[0] (posterior mean)")
    ax.set_ylabel("z[1] (posterior mean)")
    ax.set_title("Latent space: q(z|x) means and 1-sd ellipses")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_ood(result: dict, path, label_out: str = "out-of-distribution") -> None:
    """Histograms of -log p(x) for in- and out-of-distribution data."""
    from ..plotting import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    both = np.r_[result["score_in"], result["score_out"]]
    bins = np.linspace(both.min(), both.max(), 40)
    ax.hist(result["score_in"], bins=bins, alpha=0.6, label="test data", density=True)
    ax.hist(result["score_out"], bins=bins, alpha=0.6, label=label_out, density=True)
    ax.set_xlabel("-log p(x) (nats)")
    ax.set_title(f"Out-of-distribution score, AUROC = {result['auroc']:.3f}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
