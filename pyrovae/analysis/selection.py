r"""Model selection: held-out log-likelihood and information criteria.

For each candidate model (for example one per latent dimension, or per prior), with
log L = sum_n log p(x_n) on the training data (importance-sampled, see
:mod:`.loglik`) and k the number of parameters of the *generative* model (decoder,
likelihood and prior; the encoder's parameters are variational, not model
parameters):

    AIC = -2 log L + 2 k,        BIC = -2 log L + k log N            (lower is better),

and the held-out log-likelihood (mean log p(x) on validation data, higher is better),
which needs no parameter count. For neural decoders k is large and BIC penalises it
heavily: read the curves as relative, and prefer the held-out log-likelihood when it
and BIC disagree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from .loglik import log_likelihood


def generative_parameters(module) -> int:
    """Number of scalar parameters of p(x, z): everything but the encoder and guide head."""
    encoder = {
        id(p)
        for part in getattr(module, "guide_parts", ("encoder", "guide_head"))
        if hasattr(module, part)
        for p in getattr(module, part).parameters()
    }
    return sum(p.numel() for p in module.parameters() if id(p) not in encoder)


def score_model(estimator, x_train, x_val, samples: int = 500) -> dict:
    """Training and held-out log-likelihood, k, AIC and BIC of a fitted estimator."""
    module = estimator.module_
    ll_train = log_likelihood(module, estimator.as_input(x_train), samples=samples)
    ll_val = log_likelihood(module, estimator.as_input(x_val), samples=samples)
    n, k = ll_train.numel(), generative_parameters(module)
    total = float(ll_train.sum())
    return {
        "train_log_likelihood": float(ll_train.mean()),
        "val_log_likelihood": float(ll_val.mean()),
        "val_log_likelihood_se": float(ll_val.std() / math.sqrt(ll_val.numel())),
        "parameters": k,
        "aic": -2 * total + 2 * k,
        "bic": -2 * total + k * math.log(n),
    }


def compare(
    candidates: Iterable[tuple[str, Callable[[], object]]],
    x_train,
    x_val,
    samples: int = 500,
) -> dict:
    """Fit each candidate (``(label, make_estimator)``) on ``x_train`` and score it.

    Returns
    -------
    dict
        ``rows`` (one dict per candidate with its label and scores) and ``best``:
        the label chosen by each criterion (max held-out log-likelihood, min AIC,
        min BIC).
    """
    rows = []
    for label, make in candidates:
        est = make().fit(x_train, X_val=x_val)
        rows.append({"label": label, **score_model(est, x_train, x_val, samples)})
    return {"rows": rows, "best": best(rows)}


def best(rows: list[dict]) -> dict:
    """The label each criterion prefers."""
    return {
        "val_log_likelihood": max(rows, key=lambda r: r["val_log_likelihood"])["label"],
        "aic": min(rows, key=lambda r: r["aic"])["label"],
        "bic": min(rows, key=lambda r: r["bic"])["label"],
    }


def latent_dim_curve(estimator, dims: Iterable[int], x_train, x_val, samples: int = 500):
    """:func:`compare` over latent dimensions, other hyperparameters as in ``estimator``."""
    params = estimator.get_params()

    def make(d):
        return lambda: type(estimator)(**{**params, "latent_dim": int(d)})

    return compare([(int(d), make(d)) for d in dims], x_train, x_val, samples)


def plot_selection(result: dict, path, xlabel: str = "latent dimension") -> None:
    """BIC and AIC (left axis) and held-out log-likelihood (right axis) per candidate."""
    from ..plotting import pyplot

    plt = pyplot()
    rows = result["rows"]
    labels = [str(r["label"]) for r in rows]
    xs = range(len(rows))
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(xs, [r["bic"] for r in rows], "o-", label="BIC")
    ax.plot(xs, [r["aic"] for r in rows], "s--", label="AIC")
    ax.set_xticks(list(xs), labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("information criterion (lower is better)")
    ax2 = ax.twinx()
    ax2.errorbar(
        xs,
        [r["val_log_likelihood"] for r in rows],
        yerr=[r["val_log_likelihood_se"] for r in rows],
        fmt="^:",
        color="C2",
        label="held-out log p(x)",
    )
    ax2.set_ylabel("held-out log p(x) per point (higher is better)")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8, loc="best")
    for key, marker in (("bic", "BIC"), ("val_log_likelihood", "log p(x)")):
        i = labels.index(str(result["best"][key]))
        ax.annotate(
            f"best {marker}",
            (i, rows[i]["bic"]),
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
            fontsize=7,
        )
    ax.set_title("Model selection")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
