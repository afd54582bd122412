r"""Model selection: held-out log-likelihood and information criteria.

For each candidate model (for example one per latent dimension, or per prior), with
log L = sum_n log p(x_n) on the training data (importance-sampled, see
:mod:`.loglik`) and k the number of parameters of the *generative* model p(x, z),

    AIC = -2 log L + 2 k,        BIC = -2 log L + k log N            (lower is better),

and the held-out log-likelihood (mean log p(x) on validation data, higher is better),
which needs no parameter count. For neural decoders k is large and BIC penalises it
heavily: read the curves as relative, and prefer the held-out log-likelihood when it
and BIC disagree.

k counts the parameters that log p(x, z) depends on *by construction*, found from the
model program itself rather than from a list of module names: the model is run once on
a small simulated batch (x and every latent site drawn from the model), then rerun
conditioned on those values, and k is the number of scalars in the parameter tensors
that the autograd graph of the trace's log p(x, z) reaches. With a standard Normal
prior that is the decoder and the likelihood (and a hierarchical model's p(z1|z2));
a learned prior adds its own parameters; the VampPrior, p(z) = (1/K) sum_k q(z|u_k),
adds the pseudo-inputs u_k *and* the encoder and guide head that compute q(z|u_k) —
there they are parameters of the generative model, not only of the guide. An
autoencoder's code is conditioned like a latent, so its encoder is not counted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import pyro
import torch
from pyro import poutine
from torch import nn

from .. import sites
from ..data.batch import as_batch
from ..inference.loglik import log_likelihood
from ..models import at_weights

#: Rows of the simulated batch on which the model's dependencies are traced.
TRACE_ROWS = 2


def generative_parameter_tensors(module, x: torch.Tensor | None = None) -> list[nn.Parameter]:
    """The parameter tensors that log p(x, z) of ``module.model`` depends on (module
    docstring), for data ``x`` (default: a batch simulated from the model; a
    :class:`~pyrovae.data.Batch` carries the rows' conditions for a conditional
    family). A Bayesian decoder is traced at the posterior mean of its weights, whose
    means then count as parameters (its guide scales do not)."""
    with at_weights(module):
        return _generative_parameter_tensors(module, x)


def _generative_parameter_tensors(module, x) -> list[nn.Parameter]:
    params = list(module.parameters())
    flags = [p.requires_grad for p in params]
    was_training = module.training
    module.eval()
    try:
        with pyro.validation_enabled(False):
            with torch.no_grad():
                if x is None:
                    like = params[0] if params else torch.zeros(())
                    x = like.new_zeros(TRACE_ROWS, *module.data_shape)
                data = as_batch(x)
                sim = poutine.trace(poutine.uncondition(module.model)).get_trace(data)
            values = {
                name: site["value"].detach()
                for name, site in sim.nodes.items()
                if site["type"] == "sample"
            }
            for p in params:
                p.requires_grad_(True)
            conditioned = poutine.condition(module.model, data=values)
            observed = data.replace(x=values[sites.OBS])
            log_joint = poutine.trace(conditioned).get_trace(observed).log_prob_sum()
        grads = torch.autograd.grad(log_joint, params, allow_unused=True)
    finally:
        for p, f in zip(params, flags, strict=True):
            p.requires_grad_(f)
        module.train(was_training)
    return [p for p, g in zip(params, grads, strict=True) if g is not None]


def generative_parameters(module, x: torch.Tensor | None = None) -> int:
    """Number k of scalar parameters of p(x, z) (see :func:`generative_parameter_tensors`)."""
    return sum(p.numel() for p in generative_parameter_tensors(module, x))


def score_model(estimator, x_train, x_val, samples: int = 500, progress: bool = False) -> dict:
    """Training and held-out log-likelihood, k, AIC and BIC of a fitted estimator
    (``progress``: bars over the importance sampling)."""
    module = estimator.module_
    ll_train, ll_val = (
        log_likelihood(module, estimator.as_input(x), samples=samples, progress=progress)
        for x in (x_train, x_val)
    )
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
