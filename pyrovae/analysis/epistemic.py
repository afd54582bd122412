r"""Epistemic and aleatoric uncertainty of a Bayesian decoder, and an out-of-distribution
score from the epistemic part.

With decoder weights θ ~ q(θ) (:mod:`pyrovae.models.bayesian`), the predictive variance
of x at a code z splits by the law of total variance,

.. math::  \operatorname{Var}[x \mid z]
           = \underbrace{\operatorname{Var}_{q(θ)}\big(E[x \mid z, θ]\big)}_{\text{epistemic}}
           + \underbrace{E_{q(θ)}\big[\operatorname{Var}[x \mid z, θ]\big]}_{\text{aleatoric}} ,

the first what the model does not know for lack of data (it shrinks as the training set
grows), the second the noise of the likelihood itself (Kendall & Gal 2017; Depeweg et
al. 2018). Both are estimated per feature from S draws θ_s: the sample variance
(divisor S - 1) of the means E[x|z, θ_s] and the average of the variances
Var[x|z, θ_s] (each from the likelihood's closed form, or from draws of x where it has
none). For reconstructions z is the guide's mean E_q[z|x]; for prior samples z ~ p(z).

Out-of-distribution score: the sample variance across θ_s of log p(x | z̄, θ_s) at
z̄ = E_q[z|x], which is large where the weight posterior disagrees about how well x is
explained (a disagreement score in the spirit of the mutual information between θ and
x; it is not the mutual information itself).

References
----------
Kendall, A. & Gal, Y. (2017). What uncertainties do we need in Bayesian deep learning for
computer vision? NeurIPS.
Depeweg, S., Hernandez-Lobato, J. M., Doshi-Velez, F. & Udluft, S. (2018). Decomposition
of uncertainty in Bayesian deep learning for efficient and risk-sensitive learning. ICML.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError

#: Weight draws S of the epistemic / aleatoric split and of the epistemic score.
SPLIT_DRAWS = 30
#: Draws of x per weight draw where the likelihood has no closed-form variance.
VARIANCE_DRAWS = 100


def _weights(module):
    weights = getattr(module, "decoder_weights", None)
    if weights is None:
        raise ConfigError(
            "the epistemic/aleatoric split needs a Bayesian decoder (train with --bayesian-decoder)"
        )
    return weights


def _variance(p) -> torch.Tensor:
    try:
        return p.variance
    except NotImplementedError:
        return p.sample((VARIANCE_DRAWS,)).var(0)


@torch.no_grad()
def variance_split(module, z: torch.Tensor, draws: int = SPLIT_DRAWS) -> dict[str, torch.Tensor]:
    """Predictive mean, epistemic and aleatoric variance of x at codes ``z`` ``(n, d)``,
    each ``(n, *data_shape)``, from ``draws`` weight draws (module docstring)."""
    weights = _weights(module)
    if int(draws) < 2:
        raise ConfigError(f"the variance split needs draws >= 2; got {draws}")
    was_training = module.training
    module.eval()
    means, variances = [], []
    try:
        for theta in weights.draws(int(draws)):
            with weights.fixed(theta):
                p = module.decode(z)
                means.append(p.mean)
                variances.append(_variance(p))
    finally:
        module.train(was_training)
    means = torch.stack(means)
    return {
        "mean": means.mean(0),
        "epistemic": means.var(0),
        "aleatoric": torch.stack(variances).mean(0),
    }


@torch.no_grad()
def reconstruction_split(module, x: torch.Tensor, draws: int = SPLIT_DRAWS) -> dict:
    """:func:`variance_split` at the guide's means E_q[z|x] of the rows of ``x``."""
    return variance_split(module, module.encode(x).mean, draws)


@torch.no_grad()
def prior_split(module, n: int, draws: int = SPLIT_DRAWS) -> dict:
    """:func:`variance_split` at ``n`` codes drawn from the prior."""
    return variance_split(module, module.sample_latent(int(n)), draws)


@torch.no_grad()
def epistemic_scores(module, x: torch.Tensor, draws: int = SPLIT_DRAWS) -> torch.Tensor:
    """Per row of ``x``: the sample variance across ``draws`` weight draws of
    log p(x | E_q[z|x], θ_s), shape ``(N,)`` (module docstring)."""
    weights = _weights(module)
    if int(draws) < 2:
        raise ConfigError(f"the epistemic score needs draws >= 2; got {draws}")
    was_training = module.training
    module.eval()
    try:
        z = module.encode(x).mean
        ll = []
        for theta in weights.draws(int(draws)):
            with weights.fixed(theta):
                ll.append(module.decode(z).log_prob(x))
    finally:
        module.train(was_training)
    return torch.stack(ll).var(0)


def summarize_split(split: dict[str, torch.Tensor]) -> dict[str, float]:
    """Means over rows and features of the split, and the epistemic share of the total."""
    epi = float(split["epistemic"].mean())
    ale = float(split["aleatoric"].mean())
    total = epi + ale
    return {
        "epistemic": epi,
        "aleatoric": ale,
        "epistemic_share": epi / total if total > 0 else float("nan"),
    }


def auroc(score_in: np.ndarray, score_out: np.ndarray) -> float:
    """AUROC of a score separating ``score_out`` (positives) from ``score_in``."""
    from sklearn.metrics import roc_auc_score

    labels = np.r_[np.zeros(len(score_in)), np.ones(len(score_out))]
    return float(roc_auc_score(labels, np.r_[score_in, score_out]))


def plot_split(recon: dict, prior: dict, data_shape, path, feature_names=None) -> None:
    """Epistemic and aleatoric variance per feature averaged over rows, for
    reconstructions and prior samples: maps for images, bars for tabular data."""
    from ..plotting import pyplot

    plt = pyplot()
    rows = (("reconstructions", recon), ("prior samples", prior))
    image = len(data_shape) >= 2
    fig, axes = plt.subplots(2, 2, figsize=(7, 6) if image else (10, 6), squeeze=False)
    for r, (label, split) in enumerate(rows):
        for c, part in enumerate(("epistemic", "aleatoric")):
            ax = axes[r][c]
            v = split[part].mean(0).reshape(-1).cpu().numpy()
            if image:
                h, w = data_shape[-2], data_shape[-1]
                im = ax.imshow(v[-h * w :].reshape(h, w), cmap="viridis")
                fig.colorbar(im, ax=ax, fraction=0.046)
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                ax.bar(np.arange(v.size), v)
                if feature_names is not None and len(feature_names) == v.size:
                    ax.set_xticks(np.arange(v.size), feature_names, rotation=90, fontsize=6)
            ax.set_title(f"{part} variance, {label}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
