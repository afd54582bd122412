"""A self-contained HTML report of a trained run (``pyrovae report RUN``).

:func:`build_report` writes one HTML file (default ``RUN/report.html``) whose figures
are embedded as base64 PNG data URIs, so the page can be copied or mailed on its own.
Every text that comes from the run (configuration values, paths, metric names, the
posterior analysis files) is escaped with :func:`html.escape`; the page holds no script.

Sections (docs/reports.md describes each one):

1. run: configuration table and summary numbers (ELBO with its terms, active units,
   and log p(x) from ``pyrovae analyze`` / ``pyrovae evaluate`` where those ran);
2. training curves from ``metrics.csv``;
3. reconstructions with per-pixel posterior predictive sd maps (mean and sd of
   E[x|z] over z ~ q(z|x), :func:`pyrovae.analysis.uncertainty.reconstruction_uncertainty`);
4. samples from the prior;
5. latent traversals; 6. linear and spherical interpolations (see
   :mod:`pyrovae.report.figures`);
7. the latent space in two dimensions, coloured by label;
8. KL per latent dimension and active units
   (:func:`pyrovae.analysis.elbo_decomposition`);
9. the posterior analysis written by ``pyrovae analyze`` into the run folder.

Autoencoders (no latent random variables, hence no prior) skip sections 4 and 8 with
a note; tabular data gets scatter matrices and line plots instead of image grids.
"""

from __future__ import annotations

import base64
import csv
import html
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..atomic import atomic_write_text
from ..errors import CheckpointError, ConfigError, PyrovaeError
from ..runs import names, read_json, read_metrics, read_raw_config
from ..runs.data import load_run_data
from . import figures

logger = logging.getLogger(__name__)

#: Files of ``pyrovae analyze`` embedded in the posterior-analysis section, with captions.
ANALYSIS_FIGURES = (
    (
        names.UNCERTAINTY,
        "Reconstruction uncertainty: inputs, posterior predictive means and "
        "per-pixel standard deviations.",
    ),
    (names.LATENT, "Posterior means of z[0] and z[1] with one-sd ellipses of q(z|x)."),
    (
        names.POSTERIOR_FOREST,
        "Posterior draws of z for the first data points (ArviZ forest plot, HDI).",
    ),
    (
        names.SBC,
        "Simulation-based calibration: rank histograms per latent dimension "
        "(uniform when the guide is calibrated).",
    ),
    (
        names.OOD,
        "Out-of-distribution score -log p(x): test data against the same data with "
        "every feature shuffled across rows.",
    ),
    (
        names.EPISTEMIC,
        "Bayesian decoder: epistemic variance (across draws of the decoder weights) and "
        "aleatoric variance (of the likelihood, averaged over the draws) per feature, for "
        "reconstructions and prior samples.",
    ),
)

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:0;
color:#222;background:#fff;line-height:1.45}
main{max-width:1100px;margin:0 auto;padding:1rem 1.5rem 3rem}
h1{font-size:1.6rem;margin:.5rem 0 .2rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;
margin-top:2.2rem}h3{font-size:1.02rem;margin:1.2rem 0 .4rem}
.meta{color:#666;font-size:.9rem}
nav ol{columns:3;font-size:.92rem;padding-left:1.2rem}
table{border-collapse:collapse;font-size:.86rem;margin:.4rem 0 1rem}
th,td{border:1px solid #ddd;padding:.18rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f4f4;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.tables{display:flex;flex-wrap:wrap;gap:2rem;align-items:flex-start}
figure{margin:.8rem 0 1.4rem}figure img{max-width:100%;height:auto;display:block;
border:1px solid #eee}figcaption{font-size:.86rem;color:#555;margin-top:.3rem;max-width:900px}
.note{background:#f6f8fa;border-left:4px solid #9ab;padding:.5rem .8rem;font-size:.92rem}
details{margin:.5rem 0 1rem}summary{cursor:pointer;font-weight:600}
code{background:#f2f2f2;padding:0 .2rem;border-radius:3px}
"""


def esc(value: Any) -> str:
    """HTML-escaped text of ``value`` (quotes included)."""
    return html.escape(str(value), quote=True)


def png_data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def fmt(value: Any) -> str:
    """Short text for a number (4 significant digits) or anything else."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a" if math.isnan(value) else str(value)
        return f"{value:.4g}"
    return str(value)


def _summarize_list(values: list) -> str:
    flat = np.asarray(values, dtype=float).ravel() if _numeric(values) else None
    if flat is None:
        return ", ".join(fmt(v) for v in values)
    if flat.size <= 12:
        return ", ".join(fmt(float(v)) for v in flat)
    return (
        f"{flat.size} values: min {fmt(float(np.nanmin(flat)))}, "
        f"mean {fmt(float(np.nanmean(flat)))}, max {fmt(float(np.nanmax(flat)))}"
    )


def _numeric(values) -> bool:
    try:
        np.asarray(values, dtype=float)
        return True
    except (TypeError, ValueError):
        return False


def flatten(d: dict, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dict as ``[("a.b", value), ...]``; lists stay as values."""
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out += flatten(v, key + ".")
        else:
            out.append((key, v))
    return out


def table(rows: Iterable[tuple[Any, Any]], header: tuple[str, str] | None = None) -> str:
    """Two-column HTML table of ``(name, value)`` pairs; every cell escaped."""
    parts = ["<table>"]
    if header:
        parts.append(f"<tr><th>{esc(header[0])}</th><th>{esc(header[1])}</th></tr>")
    for name, value in rows:
        text = _summarize_list(value) if isinstance(value, (list, tuple)) else fmt(value)
        num = (
            ' class="num"'
            if isinstance(value, (int, float)) and not isinstance(value, bool)
            else ""
        )
        parts.append(f"<tr><th>{esc(name)}</th><td{num}>{esc(text)}</td></tr>")
    parts.append("</table>")
    return "".join(parts)


def grid_table(header: list[str], rows: list[list[Any]]) -> str:
    """HTML table with a header row; every cell escaped."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(fmt(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def figure(png: bytes | None, caption: str, alt: str | None = None) -> str:
    """``<figure>`` with the PNG embedded as a data URI (empty string for None)."""
    if not png:
        return ""
    return (
        f'<figure><img src="{png_data_uri(png)}" alt="{esc(alt or caption)}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


# -- reading a run folder --------------------------------------------------------------


def read_config(run: Path, est) -> dict[str, Any]:
    """The run's ``config.toml`` as written by ``pyrovae train`` (raw, unchecked: the
    report shows what the file says), else the estimator's parameters."""
    config = read_raw_config(run)
    if config is not None:
        return config
    return {"model": est.family, **est.plain_params()}


def family_options(family: str) -> tuple[set[str], set[str]]:
    """The options ``family`` takes, and those some other family takes: the parameters
    of the registered estimators (``ESTIMATORS.get(f)().get_params()``)."""
    from ..estimators import ESTIMATORS

    params = {f: set(ESTIMATORS.get(f)().get_params()) for f in ESTIMATORS.names()}
    own = params.get(family)
    every = set().union(*params.values())
    return (every if own is None else own), every


def config_table(config: dict[str, Any], family: str) -> str:
    """The configuration as a table of the options that apply to the run's family (and
    those of no family: data, model, processes), with the others folded into a
    ``<details>`` block: the options only other families read (``noise`` and
    ``corruption`` for a VAE, ``top_dim`` for anything but the hierarchical VAE, ...)."""
    own, every = family_options(family)
    applies, other = [], []
    for key, value in flatten(config):
        option = key.split(".")[0]  # a table's entries go with their option
        (applies if option in own or option not in every else other).append((key, value))
    html_ = table(applies, ("option", "value"))
    if other:
        html_ += (
            f'<details class="unused"><summary>Options this {esc(family)} run does not use '
            f"({len(other)})</summary>" + table(other, ("option", "value")) + "</details>"
        )
    return html_


# -- context shared by the sections ---------------------------------------------------------


@dataclass
class _Context:
    run: Path
    est: Any
    data: Any
    split: str
    x: torch.Tensor  # (n, *data_shape), the points shown and scored
    labels: np.ndarray | None
    config: dict
    history: list
    n_show: int
    traverse: int
    max_dims: int
    summary: dict = field(default_factory=dict)
    decomposition: dict | None = None
    mu: torch.Tensor | None = None  # posterior means of x, (n, L)
    sd: torch.Tensor | None = None  # posterior sds of x, (n, L)
    y: Any = None  # the labels or conditions of x (n rows), or None

    @property
    def conditional(self) -> bool:
        """Whether the model reads a condition (a conditional family)."""
        return bool(self.est.is_conditional)

    @property
    def rows(self):
        """``x`` with its conditions (for a conditional model), as the model's programs
        read it."""
        return self.est.with_targets(self.x, self.y if self.conditional else None)

    def y_of(self, index):
        """The conditions of rows ``index`` for a conditional model, else None."""
        return self.y[index] if self.conditional and self.y is not None else None

    @property
    def module(self):
        return self.est.module_

    @property
    def latent(self) -> bool:
        return bool(self.module.has_latent_sites)

    @property
    def is_image(self) -> bool:
        return len(self.est.data_shape_) >= 2

    def inverse(self, t: torch.Tensor) -> torch.Tensor:
        """Data units (the run's scaler undone), on the CPU."""
        return self.data.scaler.inverse(t.detach().cpu().reshape(t.shape[0], *self.x.shape[1:]))

    def display(self, t: torch.Tensor) -> torch.Tensor:
        """Images in data units mapped into [0, 1] for display (by the shown inputs' range
        when the data are not already in [0, 1])."""
        t = self.inverse(t)
        ref = self.inverse(self.x[: self.n_show])
        lo, hi = float(ref.min()), float(ref.max())
        if lo >= 0 and hi <= 1:
            return t.clamp(0, 1)
        return ((t - lo) / max(hi - lo, 1e-12)).clamp(0, 1)

    @torch.no_grad()
    def decode_mean(self, z: torch.Tensor, condition=None) -> torch.Tensor:
        """E[x|z] (given ``condition``, for a conditional model), on the CPU."""
        z = z.reshape(-1, z.shape[-1])
        return self.est.decode(z, condition=condition).mean.cpu()


@dataclass
class Section:
    """One section of the report: anchor id, title and HTML body."""

    id: str
    title: str
    body: str


# -- sections ---------------------------------------------------------------------------------


def _section_run(ctx: _Context) -> Section:
    est, hist = ctx.est, ctx.history
    numbers: list[tuple[str, Any]] = [
        ("model family", est.family),
        ("latent dimensions", est.module_.latent_dim),
        ("data shape", " x ".join(map(str, est.data_shape_))),
        *([("features", ", ".join(ctx.data.feature_names))] if ctx.data.feature_names else []),
        ("epochs trained", est.n_epochs_ or len(hist)),
        ("best epoch (by validation)", est.best_epoch_),
    ]
    if hist:
        secs = [r.get("seconds") for r in hist if r.get("seconds") is not None]
        if secs:
            numbers.append(("training time (s)", float(sum(secs))))
        last = hist[-1]
        for key in ("train_loss", "val_loss", "val_elbo", "val_recon", "val_kl"):
            v = last.get(key)
            if v is not None and math.isfinite(v):
                numbers.append((f"last epoch: {key}", v))
    n = int(ctx.x.shape[0])
    for key, value in ctx.summary.items():
        numbers.append((f"{ctx.split} split ({n} points): {key}", value))
    evaluation = read_json(ctx.run / names.EVALUATION)
    if evaluation:
        for key in ("elbo", "recon", "kl", "log_likelihood", "bits_per_dim", "gap"):
            if isinstance(evaluation.get(key), (int, float)):
                numbers.append(
                    (f"{names.EVALUATION} ({evaluation.get('split', '?')}): {key}", evaluation[key])
                )
    diag = read_json(ctx.run / names.DIAGNOSTICS)
    if diag and isinstance(diag.get("decomposition"), dict):
        dec = diag["decomposition"]
        for key in ("log_likelihood", "bits_per_dim", "gap"):
            if isinstance(dec.get(key), (int, float)):
                numbers.append((f"{names.DIAGNOSTICS}: {key}", dec[key]))
    body = (
        '<div class="tables"><div><h3>Summary</h3>'
        + table(numbers)
        + "</div><div><h3>Configuration</h3>"
        + config_table(ctx.config, est.family)
        + "</div></div>"
    )
    provenance = read_json(ctx.run / names.RUN_INFO)
    if provenance:
        sessions = provenance.get("sessions")
        last = sessions[-1] if isinstance(sessions, list) and sessions else provenance
        if isinstance(last, dict):
            body += (
                f"<details><summary>Provenance ({names.RUN_INFO}, last of "
                f"{len(sessions) if isinstance(sessions, list) else 1} sessions)</summary>"
                + table(flatten(last))
                + "</details>"
            )
    return Section("run", "Run", body)


def _section_curves(ctx: _Context) -> Section:
    png = figures.plot_curves(ctx.history, latent=ctx.latent)
    if png is None:
        return Section("curves", "Training curves", note(f"{names.METRICS} holds no epochs."))
    caption = (
        "Per epoch, on the training minibatches (mean over the epoch) and on the validation "
        "split: the ELBO, its reconstruction term E_q[log p(x|z)] and its KL term, in nats "
        "per data point."
        if ctx.latent
        else "Per epoch: the reconstruction log-likelihood log p(x|z) and the training loss "
        "(its negative); an autoencoder has no ELBO or KL term."
    )
    return Section("curves", "Training curves", figure(png, caption, "training curves"))


def _section_reconstructions(ctx: _Context) -> Section:
    from ..analysis.uncertainty import reconstruction_uncertainty

    x = ctx.x[: ctx.n_show]
    mean, sd = reconstruction_uncertainty(ctx.module, ctx.rows[: ctx.n_show], draws=100)
    recon = ctx.est.reconstruct(x, y=ctx.y_of(slice(0, ctx.n_show))).cpu()
    if ctx.is_image:
        rows = [ctx.display(x), ctx.display(recon)]
        at = "the posterior mean" if ctx.latent else "the code"
        labels = ["input", f"reconstruction E[x|z] at {at}"]
        caption = f"{ctx.split.capitalize()} inputs and their reconstructions (E[x|z] at {at})."
        if ctx.latent:
            sd_img = ctx.inverse(mean + sd) - ctx.inverse(mean)  # sd in data units
            scale = float(sd_img.abs().max()) or 1.0
            rows += [ctx.display(mean), (sd_img.abs() / scale).clamp(0, 1)]
            labels += [
                "posterior predictive mean over z ~ q(z|x)",
                f"per-pixel sd over z ~ q(z|x) (white = {scale:.2g})",
            ]
            caption += (
                " The last two rows are the mean and the per-pixel standard deviation of "
                "E[x|z] over 100 draws z ~ q(z|x): bright pixels are where the "
                "reconstruction moves with the posterior's uncertainty about z."
            )
        body = figure(figures.plot_image_rows(rows, labels), caption, "reconstructions")
        if not ctx.latent:
            body += note(
                "An autoencoder's code is a point, so there is no posterior uncertainty map."
            )
        return Section("reconstructions", "Reconstructions", body)
    xs = ctx.x
    body = figure(
        figures.scatter_matrix_png(
            {
                "data": ctx.inverse(xs),
                "reconstruction": ctx.inverse(ctx.est.reconstruct(xs, y=ctx.y_of(slice(None)))),
            },
            names=ctx.data.feature_names,
        ),
        "Scatter matrix of the first features: data and their reconstructions "
        "(decoded posterior means).",
        "reconstructions",
    )
    if ctx.latent:
        _, sd_all = reconstruction_uncertainty(ctx.module, ctx.rows, draws=100)
        body += figure(
            figures.plot_feature_sd(sd_all.cpu().numpy(), names=ctx.data.feature_names),
            "Per feature, the standard deviation of E[x|z] over z ~ q(z|x) "
            "(model units), averaged over data points.",
            "reconstruction uncertainty per feature",
        )
    return Section("reconstructions", "Reconstructions", body)


def _section_samples(ctx: _Context) -> Section:
    title = "Samples from the prior"
    if not ctx.latent:
        return Section(
            "samples",
            title,
            note(
                f"An autoencoder ({ctx.est.family}) has no prior p(z), so there are no prior "
                "samples (pyrovae sample draws codes from a Gaussian fitted to the training codes)."
            ),
        )
    if ctx.conditional:
        return _conditional_samples(ctx, title)
    if ctx.is_image:
        s = ctx.est.sample(64).cpu()
        png = figures.plot_image_rows(
            [ctx.display(r) for r in s.split(16)],
            ["E[x|z], z ~ p(z)", "", "", ""],
        )
        return Section(
            "samples",
            title,
            figure(
                png, "64 draws z ~ p(z), each shown as its decoded mean E[x|z].", "prior samples"
            ),
        )
    n = max(500, min(2000, ctx.data.train.shape[0]))
    png = figures.scatter_matrix_png(
        {
            "training data": ctx.inverse(ctx.data.train[:2000]),
            "samples": ctx.inverse(ctx.est.sample(n).cpu()),
        },
        names=ctx.data.feature_names,
    )
    return Section(
        "samples",
        title,
        figure(
            png,
            f"{n} draws z ~ p(z) decoded to E[x|z], against the training data.",
            "prior samples",
        ),
    )


def _class_name(ctx: _Context, k: int) -> str:
    classes = ctx.data.classes
    return str(classes[k]) if classes is not None and k < len(classes) else str(k)


def _conditional_samples(ctx: _Context, title: str) -> Section:
    """Samples of a conditional model: per class (a row of 8 each) for a label, else
    given the conditions of training rows."""
    train_y = ctx.data.targets("train")
    probe = ctx.est.sample_conditions(train_y, 1)
    labels = not torch.is_floating_point(torch.as_tensor(probe))
    if labels:
        classes = int(getattr(ctx.module, "condition_dim", 1))
        cond = ctx.est.sample_conditions(train_y, 8 * classes)
        s = ctx.est.sample(len(cond), condition=cond).cpu()
        shown = [k for k in range(classes)][:20]
        caption = "8 draws z ~ p(z | c) per class c, each shown as E[x | z, c]"
        if ctx.is_image:
            rows = [ctx.display(s[cond == k]) for k in shown]
            png = figures.plot_image_rows(rows, [f"class {_class_name(ctx, k)}" for k in shown])
            return Section("samples", title, figure(png, caption + ".", "samples per class"))
        n = 8 * classes
    else:
        n = 64 if ctx.is_image else max(500, min(2000, ctx.data.train.shape[0]))
        cond = ctx.est.sample_conditions(train_y, n)
        s = ctx.est.sample(n, condition=cond).cpu()
        caption = f"{n} draws z ~ p(z | c) given the conditions c of {n} training rows"
        if ctx.is_image:
            png = figures.plot_image_rows([ctx.display(r) for r in s.split(16)], ["", "", "", ""])
            return Section("samples", title, figure(png, caption + ".", "conditional samples"))
    png = figures.scatter_matrix_png(
        {"training data": ctx.inverse(ctx.data.train[:2000]), "samples": ctx.inverse(s)},
        names=ctx.data.feature_names,
    )
    return Section("samples", title, figure(png, f"{caption}, against the training data.", "s"))


def _dims_by_information(ctx: _Context) -> list[int]:
    """Latent dimensions, most informative first (KL per dimension when known, else the
    variance of the posterior means over data points)."""
    dec = ctx.decomposition or {}
    score = dec.get("kl_per_dim") or ctx.mu.var(0).tolist()
    order = sorted(range(len(score)), key=lambda d: -score[d])
    return order[: ctx.max_dims]


def _traversal_values(ctx: _Context, dims: list[int]) -> np.ndarray:
    """Per dimension, ``traverse`` values over mean +- 3 sd of the aggregate posterior
    q(z_d) = mean over x of q(z_d|x) (variance Var(mu_d) + E[sd_d^2])."""
    mu, sd = ctx.mu.double(), ctx.sd.double()
    centre = mu.mean(0)
    spread = (mu.var(0) + (sd**2).mean(0)).sqrt() if mu.shape[0] > 1 else sd.mean(0)
    spread = torch.where(spread > 0, spread, torch.ones_like(spread))
    k = torch.linspace(-3, 3, ctx.traverse, dtype=torch.float64)
    return np.stack([(centre[d] + k * spread[d]).numpy() for d in dims])


def _section_traversals(ctx: _Context) -> Section:
    dims = _dims_by_information(ctx)
    values = _traversal_values(ctx, dims)
    z0 = ctx.mu[0]
    codes = figures.traversal_codes(z0, dims, values)
    if (
        ctx.conditional
        and ctx.is_image
        and ctx.y is not None
        and not torch.is_floating_point(torch.as_tensor(ctx.y))
    ):
        return _traversals_per_class(ctx, dims, values)
    decoded = ctx.decode_mean(codes.to(ctx.est.device_), condition=ctx.y_of(0))
    order = (
        "by KL per dimension"
        if (ctx.decomposition or {}).get("kl_per_dim")
        else "by the variance of the codes over data points"
    )
    unit = "row" if ctx.is_image else "panel"
    caption = (
        f"Starting from the posterior mean of the first {ctx.split} point, each {unit} varies "
        "one latent coordinate over the mean +- 3 sd of the aggregate posterior of that "
        f"coordinate ({ctx.traverse} values; for a VAE with a standard normal prior about "
        f"[-3, 3]) and holds the others fixed; {unit}s ordered {order}, at most {ctx.max_dims}."
    )
    if ctx.is_image:
        images = ctx.display(decoded).reshape(len(dims), ctx.traverse, *ctx.x.shape[1:])
        png = figures.plot_traversal_images(images, dims, values)
    else:
        feats = ctx.inverse(decoded).reshape(len(dims), ctx.traverse, -1).numpy()
        png = figures.plot_traversal_features(feats, dims, values, names=ctx.data.feature_names)
    return Section("traversals", "Latent traversals", figure(png, caption, "latent traversals"))


def _traversals_per_class(ctx: _Context, dims: list[int], values: np.ndarray) -> Section:
    """A label-conditional model: the most informative dimension traversed from the
    first point's posterior mean, one row per class."""
    d, v = dims[0], values[:1]
    codes = figures.traversal_codes(ctx.mu[0], [d], v).to(ctx.est.device_)
    classes = int(getattr(ctx.module, "condition_dim", 1))
    rows = [ctx.display(ctx.decode_mean(codes, condition=k)) for k in range(min(classes, 20))]
    labels = [f"class {_class_name(ctx, k)}" for k in range(len(rows))]
    caption = (
        f"Starting from the posterior mean of the first {ctx.split} point, latent coordinate "
        f"z[{d}] (the most informative) varies over the mean +- 3 sd of its aggregate "
        f"posterior ({ctx.traverse} values, left to right), decoded given each class c "
        "(one row per class): what the class changes and what z keeps."
    )
    png = figures.plot_image_rows(rows, labels, ncol=ctx.traverse)
    return Section("traversals", "Latent traversals", figure(png, caption, "traversals"))


def _pairs(ctx: _Context, count: int = 2) -> list[tuple[int, int]]:
    """Index pairs of data points to interpolate between (different labels if known)."""
    n = ctx.x.shape[0]
    if n < 2:
        return []
    pairs = []
    for a in range(min(count, n - 1)):
        b = None
        if ctx.labels is not None:
            b = next((j for j in range(n) if ctx.labels[j] != ctx.labels[a] and j > a), None)
        pairs.append((a, b if b is not None else n - 1 - a))
    return pairs


def _section_interpolations(ctx: _Context) -> Section:
    title = "Interpolations"
    pairs = _pairs(ctx)
    if not pairs:
        return Section("interpolations", title, note("Interpolation needs two data points."))
    t = np.linspace(0, 1, 10)
    body = ""
    for a, b in pairs:
        za, zb = ctx.mu[a].double(), ctx.mu[b].double()
        lin = figures.lerp(za, zb, torch.from_numpy(t)).float()
        sph = figures.slerp(za, zb, torch.from_numpy(t)).float()
        both = torch.cat([lin, sph]).to(ctx.est.device_)
        decoded = ctx.decode_mean(both, condition=ctx.y_of(a))
        what = f"{ctx.split} points {a} and {b}"
        if ctx.labels is not None:
            what += f" (labels {ctx.labels[a]} and {ctx.labels[b]})"
        if ctx.is_image:
            shown = ctx.display(decoded)
            ends = ctx.display(ctx.x[[a, b]])
            png = figures.plot_image_rows(
                [ends, shown[: len(t)], shown[len(t) :]],
                ["inputs", "linear: (1-t) a + t b", "spherical: slerp(a, b; t)"],
            )
        else:
            dec = ctx.inverse(decoded).reshape(2 * len(t), -1).numpy()
            png = figures.plot_interpolation_features(
                dec[: len(t)], dec[len(t) :], t, names=ctx.data.feature_names
            )
        body += figure(
            png,
            f"Between the posterior means a and b of {what}, t = 0 ... 1 in "
            "10 steps, decoded to E[x|z(t)].",
            "interpolation",
        )
    lin_n = figures.lerp(ctx.mu[pairs[0][0]], ctx.mu[pairs[0][1]], torch.from_numpy(t).float())
    sph_n = figures.slerp(ctx.mu[pairs[0][0]], ctx.mu[pairs[0][1]], torch.from_numpy(t).float())
    body += figure(
        figures.plot_path_norms(lin_n, sph_n, t),
        "Norm of the code along the first pair's paths. When a and b point in different "
        "directions the linear path cuts inside the sphere, through codes of unusually small "
        "norm for a standard normal prior in high dimension; the spherical path keeps the "
        "norm between ||a|| and ||b|| (White 2016).",
        "path norms",
    )
    if not ctx.latent:
        body += note(
            "For an autoencoder, the paths join point codes; slerp assumes codes "
            "centred at the origin, which an autoencoder's codes need not be."
        )
    return Section("interpolations", title, body)


def _section_latent(ctx: _Context) -> Section:
    mu = ctx.mu.numpy()
    what = "first two dimensions" if mu.shape[1] <= 2 else "first two principal components"
    kind = "posterior means E[z|x]" if ctx.latent else "codes"
    caption = f"The {kind} of {mu.shape[0]} {ctx.split} points, {what}" + (
        ", coloured by label." if ctx.labels is not None else " (the data have no labels)."
    )
    png = figures.plot_latent_2d(mu, ctx.labels, title=kind)
    return Section("latent", "Latent space", figure(png, caption, "latent space"))


def _section_kl(ctx: _Context) -> Section:
    title = "KL per latent dimension"
    if not ctx.latent:
        return Section(
            "kl",
            title,
            note(
                f"An autoencoder ({ctx.est.family}) has no prior, so there is no KL term; its "
                f"codes vary over the {ctx.split} points in {int((ctx.mu.var(0) > 0.01).sum())} of "
                f"{ctx.mu.shape[1]} dimensions (variance > 0.01)."
            ),
        )
    dec = ctx.decomposition
    active = dec["active_units"]
    text = (
        f"<p>Active units: <strong>{esc(active)}</strong> of {esc(ctx.mu.shape[1])} "
        "(dimensions whose posterior mean varies over the data points with variance &gt; "
        f"0.01; Burda et al. 2016). KL = {esc(fmt(dec['kl']))} nats per data point; "
        f"I(x; z) = {esc(fmt(dec['mutual_info']))} nats.</p>"
    )
    if dec.get("kl_per_dim"):
        png = figures.plot_kl_per_dim(dec["kl_per_dim"], dec.get("activity"))
        caption = (
            "Mean over the data points of KL(q(z_d|x) || p(z_d)) per dimension d (nats); "
            "grey bars: inactive units."
        )
    else:
        png = figures.plot_kl_per_dim(dec["activity"], dec.get("activity"))
        caption = (
            "The guide or prior does not factorize over dimensions, so the KL is not split; "
            "shown instead: the variance of the posterior means per dimension (activity)."
        )
    return Section("kl", title, text + figure(png, caption, "KL per dimension"))


def _section_analysis(ctx: _Context) -> Section:
    title = "Posterior analysis"
    diag = read_json(ctx.run / names.DIAGNOSTICS)
    pngs = [(name, cap) for name, cap in ANALYSIS_FIGURES if (ctx.run / name).is_file()]
    if diag is None and not pngs:
        return Section(
            "analysis",
            title,
            note(
                "No posterior analysis in this run folder: run `pyrovae analyze RUN` to add "
                "log p(x), NUTS refinement, calibration and out-of-distribution results here."
            ),
        )
    body = ""
    if diag is not None:
        body += f"<h3>{names.DIAGNOSTICS}</h3>" + table(flatten(diag), ("quantity", "value"))
    summary = ctx.run / names.POSTERIOR_SUMMARY
    if summary.is_file():
        with open(summary, newline="") as fh:
            rows = list(csv.reader(fh))
        if rows:
            shown = rows[1:21]
            body += (
                f"<h3>{names.POSTERIOR_SUMMARY} (first {len(shown)} of {len(rows) - 1} rows)</h3>"
                + grid_table(rows[0], shown)
            )
    for name, caption in pngs:
        body += f"<h3>{esc(name)}</h3>" + figure((ctx.run / name).read_bytes(), caption, name)
    return Section("analysis", title, body)


#: The sections in order: (builder, title used in the error note if the builder fails).
SECTIONS: tuple[tuple[Callable[[_Context], Section], str], ...] = (
    (_section_run, "Run"),
    (_section_curves, "Training curves"),
    (_section_reconstructions, "Reconstructions"),
    (_section_samples, "Samples from the prior"),
    (_section_traversals, "Latent traversals"),
    (_section_interpolations, "Interpolations"),
    (_section_latent, "Latent space"),
    (_section_kl, "KL per latent dimension"),
    (_section_analysis, "Posterior analysis"),
)


# -- assembly ---------------------------------------------------------------------------------


def _load_data(est, data):
    if data is None or isinstance(data, str):
        try:
            return load_run_data(est.data_info_, data)
        except ConfigError as exc:
            raise ConfigError(f"{exc} (the report needs data to show)") from None
    return data


def _class_names(data, labels: np.ndarray) -> np.ndarray:
    """Label indices as their classes' names where the labels came from a label column."""
    if data.classes is None:
        return labels
    return np.asarray([str(c) for c in data.classes])[labels.astype(np.int64)]


def _pick_split(data) -> str:
    for name in ("test", "val", "train"):
        if data.split(name).shape[0]:
            return name
    raise ConfigError("the run's data has no rows")  # pragma: no cover - load_data forbids


def render(title: str, subtitle: str, sections: list[Section]) -> str:
    """The HTML page (every piece of text in ``sections`` is already escaped)."""
    nav = "".join(f'<li><a href="#{esc(s.id)}">{esc(s.title)}</a></li>' for s in sections)
    body = "".join(
        f'<section id="{esc(s.id)}"><h2>{esc(s.title)}</h2>{s.body}</section>' for s in sections
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body><main>"
        f'<h1>{esc(title)}</h1><p class="meta">{esc(subtitle)}</p>'
        f"<nav><ol>{nav}</ol></nav>{body}</main></body></html>\n"
    )


def _check_report_options(run: Path, **values: int) -> None:
    if not run.is_dir() or not (run / names.CHECKPOINT).is_file():
        raise CheckpointError(f"{str(run)!r} is not a run folder (no {names.CHECKPOINT} in it)")
    low = {"traverse": 2}
    for name, value in values.items():
        least = low.get(name, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigError(f"{name} must be an integer >= {least}; got {value!r}")


def _context(run: Path, est, splits, n: int, show: int, traverse: int, max_dims: int):
    """What every section reads: the run, its estimator, the shown split's first ``n``
    rows and their labels, the configuration and the training history."""
    from ..data.validation import class_labels

    split = _pick_split(splits)
    x = est.as_input(splits.split(split)[:n])
    labels = splits.labels(split)
    y = splits.targets(split)
    return _Context(
        y=y[:n] if y is not None else None,
        run=run,
        est=est,
        data=splits,
        split=split,
        x=x,
        labels=_class_names(splits, class_labels(labels[:n].cpu().numpy()))
        if labels is not None
        else None,
        config=read_config(run, est),
        history=read_metrics(run) or list(est.history_),
        n_show=min(show, int(x.shape[0])),
        traverse=traverse,
        max_dims=max_dims,
    )


def _summarise(ctx) -> None:
    """The posterior moments of the shown rows and the summary numbers."""
    est, x = ctx.est, ctx.x
    est.module_.eval()
    # the guide's joint posterior, as moments of the code the decoder reads
    moments = est.module_.posterior_moments(ctx.rows)
    mu = est.module_.code_of({site: m.mean for site, m in moments.items()})
    sd = est.module_.code_of({site: m.sd for site, m in moments.items()})
    ctx.mu, ctx.sd = mu.cpu().float(), sd.cpu().float()
    if ctx.latent:
        from ..analysis import elbo_decomposition

        ctx.decomposition = elbo_decomposition(est.module_, ctx.rows, samples=0, particles=10)
        for key in ("elbo", "recon", "kl"):
            ctx.summary[key] = ctx.decomposition[key]
        ctx.summary["active units"] = ctx.decomposition["active_units"]
        ctx.summary["I(x; z)"] = ctx.decomposition["mutual_info"]
    else:
        ctx.summary["recon"] = est.evaluate(x, y=ctx.y)["recon"]


def _build_section(builder, title: str, ctx) -> Section:
    """One section; a figure that fails becomes a note instead of losing the report."""
    try:
        return builder(ctx)
    except PyrovaeError:
        raise
    except Exception as exc:  # one broken figure must not lose the whole report
        logger.warning("report section %r failed: %s", title, exc, exc_info=True)
        return Section(
            builder.__name__.removeprefix("_section_"),
            title,
            note(f"This section could not be drawn: {exc}"),
        )


def build_report(
    run_dir: str | Path,
    output: str | Path | None = None,
    *,
    n: int = 500,
    data=None,
    seed: int = 0,
    show: int = 16,
    traverse: int = 9,
    max_dims: int = 10,
) -> Path:
    """Write a self-contained HTML report of a run; return its path.

    Parameters
    ----------
    run_dir : path
        A run folder (``checkpoint.pt``, usually ``config.toml`` and ``metrics.csv``).
    output : path, optional
        The HTML file to write (default: ``run_dir/report.html``).
    n : int
        Data points of the held-out split (test, else validation, else training) used
        for the latent view, the KL per dimension and the summary numbers.
    data : str or DataSplits, optional
        Data to show instead of the run's own (a dataset name or file, scaled with the
        run's scaler; or a :class:`~pyrovae.data.datasets.DataSplits`). Needed for runs
        that do not record their data (trained with the Python API).
    seed : int
        Seed of the draws (posterior draws, prior samples).
    show : int
        Data points shown as reconstructions.
    traverse : int
        Values per latent traversal.
    max_dims : int
        Latent dimensions traversed (the most informative ones).

    Raises
    ------
    CheckpointError
        ``run_dir`` is not a run folder.
    ConfigError
        A bad option, or a run without recorded data and no ``data``.
    """
    from ..estimators import load

    t0 = time.perf_counter()
    run = Path(run_dir)
    _check_report_options(run, n=n, show=show, traverse=traverse, max_dims=max_dims)
    est = load(run)
    ctx = _context(run, est, _load_data(est, data), n, show, traverse, max_dims)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        _summarise(ctx)
        sections = [_build_section(builder, title, ctx) for builder, title in SECTIONS]
    title = f"pyrovae report: {run.resolve().name}"
    subtitle = (
        f"{run.resolve()} | {est.family} | written {datetime.now():%Y-%m-%d %H:%M} by "
        f"pyrovae {__version__}"
    )
    out = Path(output) if output else run / names.REPORT
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, render(title, subtitle, sections))
    logger.info("report written to %s in %.1f s", out, time.perf_counter() - t0)
    return out
