"""Held-out Heston surfaces with a model-discrepancy term (an experiment for issue 19).

The notes' VAE (``bench_heston_fit.py``'s ``mlp`` model, read from ``OUT/heston_fit/``)
does not reproduce a surface exactly: its reconstruction error on the validation
surfaces is 0.046 in standardized units, and that error is far from white noise. Here
the decoder's error is modelled, in the spirit of Kennedy & O'Hagan (2001), as a
Gaussian discrepancy δ ~ N(0, Σ) with

.. math::  Σ = S + ε I ,

S the sample covariance (over the cells) of the reconstruction residuals of the training
surfaces, x_rec - x with x_rec = decoder(E[z | x]), and ε a nugget. The observed cells
of a held-out surface then have the likelihood x_o ~ N(m_o(z), Σ_oo), m = the decoder's
mean, and given z the hidden cells are Gaussian:

.. math::  x_h \\mid z, x_o \\sim N\\big(m_h(z) + Σ_{ho} Σ_{oo}^{-1} (x_o - m_o(z)),\\;
           Σ_{hh} - Σ_{ho} Σ_{oo}^{-1} Σ_{oh}\\big)

(the conditional of a joint Gaussian; Rasmussen & Williams 2006, eq. A.6). z is set to
its MAP estimate under N(0, I) (Adam, ``--steps``), a plug-in predictive that leaves
out z's own uncertainty, and the 90 % band of each hidden cell is its conditional mean ±
1.645 conditional sd, mapped to implied vol (a monotone map per cell); or, with
``--method nuts``, z is drawn by NUTS from its posterior under this likelihood
(``--warmup``/``--draws``), each draw gives the hidden cells' conditional Gaussian, one
value is drawn from each, and the band is the 5 %/95 % quantiles of those predictive
draws (in implied vol), the mean their mean. The marginal
likelihood of the validation residuals under N(0, S + ε I) rises as ε falls (the
residuals lie almost in the span of the training residuals: both are smooth functions
of the four Heston parameters), so it does not choose ε; ``--eps`` lists the nuggets
run, each reported.

``--method laplace`` draws z from the Laplace approximation at the MAP instead,
N(z*, H⁻¹) with the Gauss–Newton H = Jᵀ Σ_oo⁻¹ J + I (J by central differences), and
each draw's hidden cells from their conditional, as NUTS's draws are used: cheap enough
for the pricer decoder (``--model pricer``, rows in implied vol), whose decode with a
gradient costs about 30 ms.

The MAP z is found by Adam from z = 0 (``--steps`` steps at lr 0.05, every pattern's z
in one batched run) or, with ``--optimizer lbfgs``, by L-BFGS. ``--float64`` evaluates
the pricer decoder's fits in float64: in float32 its implied vols are rounded by about
1e-8, more than the smallest scales of Σ fitted to its residuals, so the MAP loss is
rough at that level and Adam's end point depends on the rounding.

``--reference random`` takes S from the residuals of ``--ref-surfaces`` surfaces with
random parameters (drawn as the held-out ones, seed ``--ref-seed``) instead of the
training surfaces': out-of-sample residuals, as large as a new surface's, where the
training surfaces' understate them (the decoder was fitted to those).

``--scale conformal`` (MAP only) calibrates the plug-in's band instead of Σ: the
first ``--cal-surfaces`` validation surfaces are fitted as the held-out ones are, and
each pattern's band is μ ± q·sd with q the split-conformal quantile of their hidden
cells' standardized errors |x − μ| / sd (pyrovae's ``conformal_quantile``, each surface
one case; Lei et al. 2018): a new surface's expected coverage is then 90 % whatever
Σ's errors, for the fitting procedure that produced the scores.

Each surface's record is a JSON file in ``OUT/NAME/`` (a rerun with the same settings
resumes where the last one stopped). Patterns and held-out surfaces are
``bench_heston_fit.py``'s (same seed, same masks);
RMSE in vol points over the hidden cells and coverage of the hidden cells by the 90 %
band, per pattern, mean over the surfaces; the validation log-likelihood of each ε.

    python benchmarks/bench_heston_discrepancy.py --surfaces 100 --eps 1e-7 1e-5 \\
        --out benchmarks/results              # needs OUT/heston_fit/mlp.pt
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_heston_fit as fit  # noqa: E402
from _common import machine_info, restores_threads, write_outputs  # noqa: E402

from pyrovae.api import load  # noqa: E402
from pyrovae.atomic import atomic_write_text  # noqa: E402
from pyrovae.data import load_data  # noqa: E402
from pyrovae.data.heston import HestonSpec, heston_surfaces  # noqa: E402
from pyrovae.inference import conformal_quantile  # noqa: E402
from pyrovae.inference.discrepancy import (  # noqa: E402
    GaussianDiscrepancy,
    NuggetScaledDiscrepancy,
)

#: z-score of the 90 % central band of a Gaussian.
Z90 = 1.6448536269514722


def validation_loglik(cov: torch.Tensor, residuals: torch.Tensor) -> float:
    """Mean log N(r; 0, cov) of the validation residual rows (nats per surface)."""
    zero = torch.zeros(cov.shape[0], dtype=cov.dtype)
    return float(torch.distributions.MultivariateNormal(zero, cov).log_prob(residuals).mean())


def fit_pattern(mean_fn, x, observed, hidden, cov, steps: int, **kwargs):
    """MAP z under N(0, I) and x_o ~ N(m_o(z), cov_oo), then the hidden cells' Gaussian
    conditional: (z, conditional mean, conditional sd), the latter two over ``hidden``.
    ``kwargs``: :func:`fit_patterns`'s ``optimizer`` and ``dtype``."""
    return fit_patterns(mean_fn, x, [observed], [hidden], [cov], steps, **kwargs)[0]


def _map_loss(mean_fn, x, z, observed, chols):
    """The negative log posterior of the stacked codes ``z`` (one row per pattern), up to
    a constant: Σ_p ½ r_pᵀ Σ_p⁻¹ r_p + ½ ‖z_p‖², r_p the pattern's observed residuals."""
    means = mean_fn(z).double()
    loss = 0.5 * z.double().square().sum()
    for m, o, chol in zip(means, observed, chols, strict=True):
        r = x[o] - m[o]
        loss = loss + 0.5 * (r * torch.cholesky_solve(r[:, None], chol)[:, 0]).sum()
    return loss


def fit_patterns(
    mean_fn, x, observed, hidden, covs, steps: int, optimizer: str = "adam", dtype=None
) -> list:
    """:func:`fit_pattern` for several patterns at once, from z = 0.

    ``optimizer="adam"``: one z per pattern, stacked and optimized by one Adam (lr 0.05,
    ``steps`` steps) over the sum of the patterns' losses, so that each decoder call
    serves every pattern. Adam's update is elementwise and each z enters only its own
    pattern's loss, so this is the patterns' separate Adam runs (equal up to the
    rounding of the batched decoder); the pricer decoder, whose cost is in many small
    operations, then costs little more per step for several patterns than for one.
    ``optimizer="lbfgs"``: L-BFGS with a strong-Wolfe line search (Nocedal & Wright
    2006, ch. 7), at most ``steps`` iterations, one pattern at a time: it converges on
    a smooth loss where Adam's fixed step leaves z oscillating. ``dtype``: the codes'
    dtype (default float32; float64 for a decoder converted to float64)."""
    chols = [torch.linalg.cholesky(c[o][:, o]) for c, o in zip(covs, observed, strict=True)]
    dtype = dtype or torch.float32
    if optimizer == "lbfgs":
        rows = []
        for o, chol in zip(observed, chols, strict=True):
            zp = torch.zeros(1, 4, dtype=dtype, requires_grad=True)
            opt = torch.optim.LBFGS(
                [zp],
                max_iter=steps,
                tolerance_grad=1e-9,
                tolerance_change=1e-12,
                history_size=20,
                line_search_fn="strong_wolfe",
            )

            def closure(zp=zp, o=o, chol=chol, opt=opt):
                opt.zero_grad()
                loss = _map_loss(mean_fn, x, zp, [o], [chol])
                loss.backward()
                return loss

            opt.step(closure)
            rows.append(zp.detach())
        z = torch.cat(rows)
    else:
        z = torch.zeros(len(observed), 4, dtype=dtype, requires_grad=True)
        opt = torch.optim.Adam([z], lr=0.05)
        for _ in range(steps):
            opt.zero_grad()
            _map_loss(mean_fn, x, z, observed, chols).backward()
            opt.step()
    out = []
    with torch.no_grad():
        means = mean_fn(z).double()
        for zp, m, o, h, cov, chol in zip(z, means, observed, hidden, covs, chols, strict=True):
            r = x[o] - m[o]
            cross = cov[h][:, o]
            mu = m[h] + cross @ torch.cholesky_solve(r[:, None], chol)[:, 0]
            explained = (cross * torch.cholesky_solve(cross.T, chol).T).sum(1)
            var = torch.diagonal(cov[h][:, h]) - explained
            out.append((zp.detach(), m, mu, var.clamp_min(0).sqrt()))
    return out


def laplace_pattern(mean_fn, x, observed, hidden, cov, steps: int, draws: int, seed: int, **kwargs):
    """Predictive draws ``(draws, D)`` of the rows with z from the Laplace approximation
    at the MAP z: N(z*, H⁻¹), H = Jᵀ Σ_oo⁻¹ J + I (Gauss–Newton, J by central
    differences), and for each z draw the hidden cells from their Gaussian conditional
    given the observed ones (the observed cells keep their values). ``kwargs``:
    :func:`fit_patterns`'s ``optimizer`` and ``dtype``."""
    z_hat, *_ = fit_pattern(mean_fn, x, observed, hidden, cov, steps, **kwargs)
    chol = torch.linalg.cholesky(cov[observed][:, observed])
    with torch.no_grad():
        jac = fit.central_jacobian(mean_fn, z_hat)[observed]
        hess = jac.T @ torch.cholesky_solve(jac, chol) + torch.eye(jac.shape[1], dtype=jac.dtype)
        g = torch.Generator().manual_seed(seed)
        eps = torch.randn(draws, jac.shape[1], generator=g, dtype=jac.dtype)
        zs = z_hat.double() + eps @ torch.linalg.cholesky(torch.linalg.inv(hess)).T
        means = torch.cat([mean_fn(c.to(z_hat.dtype)).double() for c in zs.split(25)])
        cross = cov[hidden][:, observed]
        gain = torch.cholesky_solve(cross.T, chol).T  # Σ_ho Σ_oo⁻¹
        cond = cov[hidden][:, hidden] - gain @ cross.T
        # a square root by eigendecomposition: with a nugget of 1e-11 the conditional
        # covariance is numerically semidefinite (eigenvalues clamped at 0)
        lam, vec = torch.linalg.eigh((cond + cond.T) / 2)
        lower = vec * lam.clamp_min(0).sqrt()
        rows = x.expand(draws, -1).clone()
        mu = means[:, hidden] + (x[observed] - means[:, observed]) @ gain.T
        noise = torch.randn(draws, int(hidden.sum()), generator=g, dtype=mu.dtype)
        rows[:, hidden] = mu + noise @ lower.T
    return rows


def nuts_pattern(mlp, x, observed, noise, warmup: int, draws: int, seed: int):
    """Predictive draws of the rows ``(draws, D)``: pyrovae's conditioning API,
    ``mlp.condition(x, observed, method="nuts", noise=noise)`` (one chain), with the
    discrepancy ``noise`` in place of the model's likelihood; the mean draw of the
    discrepancy's scale (1 when it is fixed); and the number of divergent transitions."""
    completion = mlp.condition(
        x.float()[None],
        observed[None],
        method="nuts",
        noise=noise,
        draws=draws,
        warmup=warmup,
        chains=1,
        seed=seed,
    )
    scale = completion.z.get("discrepancy_scale")
    divergences = int(completion.diagnostics["summary"]["divergences"])
    return completion.x[:, 0], 1.0 if scale is None else float(scale.mean()), divergences


def fit_surface(i, truth, ctx, args, seed=None) -> dict:
    """Every ε and pattern on held-out surface ``i`` (of the surfaces drawn with ``seed``,
    default ``args.seed``). The MAP plug-in's band is the conditional mean ± z·sd with
    z = ``ctx["band_z"][j]`` for pattern j (its conformal quantile) or 1.645; with
    ``ctx["cal_cells"]``, the record keeps that many of each pattern's standardized
    errors |x − μ| / sd (cells drawn at random), the scores that calibrate z."""
    seed = args.seed if seed is None else seed
    rng = np.random.default_rng([seed, i])  # bench_heston_fit's masks, the same draws
    valid = ~torch.isnan(truth)
    truth = torch.nan_to_num(truth, nan=0.0)
    masks = ctx["setting"].patterns(valid, rng)
    mean_fn = ctx["mean_fn"]
    x = ctx["to_rows"](truth).double()
    how = {"optimizer": args.optimizer, "dtype": ctx["dtype"]}  # of the MAP z
    hiddens = [valid & ~o for o in masks]
    fitted = [j for j, h in enumerate(hiddens) if bool(h.any())]
    record: dict = {"surface": i, "patterns": list(fit.PATTERNS), "eps": {}}
    band_z = ctx.get("band_z", {})
    for eps, base in ctx["covs"].items():
        rmse, cover, scales, divergences, scores = [], [], [], [], []
        t0 = time.perf_counter()
        # each pattern with hidden cells, and its covariance: ŝ Σ with a calibrated
        # scale, else Σ
        covs = {j: base * ctx["noises"][eps].pattern_scale(masks[j]) for j in fitted}
        if args.method == "map":  # every pattern's MAP z in one batched Adam run
            found = fit_patterns(
                mean_fn,
                x,
                [masks[j] for j in fitted],
                [hiddens[j] for j in fitted],
                list(covs.values()),
                args.steps,
                **how,
            )
            maps = dict(zip(fitted, found, strict=True))
        for j, (observed, hidden) in enumerate(zip(masks, hiddens, strict=True)):
            if j not in covs:
                rmse.append(None)
                cover.append(None)
                scores.append(None)
                continue
            t = truth[hidden]
            cov = covs[j]
            if args.method == "nuts":
                rows, s, div = nuts_pattern(
                    ctx["mlp"],
                    x,
                    observed,
                    ctx["noises"][eps],
                    args.warmup,
                    args.draws,
                    args.seed + i,
                )
                scales.append(s)
                divergences.append(div)
            if args.method == "laplace":
                rows = laplace_pattern(
                    mean_fn, x, observed, hidden, cov, args.steps, args.draws, args.seed + i, **how
                )
            if args.method in ("nuts", "laplace"):
                iv_draws = ctx["to_iv"](rows.to(ctx["dtype"]))[:, hidden]
                iv = iv_draws.mean(0)
                q = torch.tensor([0.05, 0.95], dtype=iv_draws.dtype)
                lo, hi = torch.quantile(iv_draws, q, dim=0)
            else:
                _, m, mu, sd = maps[j]
                z = band_z.get(j, Z90)
                rows = [m.clone() for _ in range(3)]
                for row, value in zip(rows, (mu, mu - z * sd, mu + z * sd), strict=True):
                    row[hidden] = value
                if ctx.get("cal_cells"):
                    scores.append(
                        standardized_errors(x[hidden], mu, sd, ctx["cal_cells"], seed, i, j)
                    )
                iv, lo, hi = (ctx["to_iv"](row.to(ctx["dtype"]))[hidden] for row in rows)
            rmse.append(float(((iv - t) * 100).square().mean().sqrt()))
            cover.append(float(((t >= lo) & (t <= hi)).double().mean()))
        record["eps"][repr(eps)] = {
            "rmse_hidden": rmse,
            "coverage90": cover,
            "scale_mean": scales,
            "divergences": divergences,
            "seconds": time.perf_counter() - t0,
        }
        if ctx.get("cal_cells"):
            record["eps"][repr(eps)]["scores"] = scores
    return record


def standardized_errors(x, mu, sd, cells: int, seed: int, i: int, j: int) -> list:
    """|x − μ| / sd of ``cells`` hidden cells drawn at random (all when fewer), to 4
    significant digits: 0 where x = μ exactly, inf where sd = 0 and x ≠ μ."""
    err = (x - mu).abs()
    score = torch.where(err == 0, torch.zeros_like(err), err / sd)
    pick = np.random.default_rng([seed, i, j, 1]).permutation(len(score))[:cells]
    return [float(f"{v:.4g}") for v in score[torch.from_numpy(pick)].tolist()]


def conformal_z(records: list[dict], eps) -> dict:
    """Each pattern's conformal quantile of the calibration surfaces' standardized errors
    (pyrovae's :func:`conformal_quantile`, a surface's cells weighing 1 together)."""
    out = {}
    for j in range(1, len(fit.PATTERNS)):
        rows = [r["eps"][repr(eps)]["scores"][j] for r in records]
        rows = [r for r in rows if r]
        if rows:
            groups = np.repeat(np.arange(len(rows)), [len(r) for r in rows])
            out[j] = conformal_quantile(np.concatenate(rows), 0.9, groups=groups)
    return out


def summarize(records: list[dict], eps_values) -> dict:
    out = {}
    for eps in map(repr, eps_values):
        per = {}
        for j, pattern in enumerate(fit.PATTERNS):
            for key in ("rmse_hidden", "coverage90"):
                vals = [r["eps"][eps][key][j] for r in records if r["eps"][eps][key][j] is not None]
                if vals:
                    per.setdefault(pattern, {})[key] = {
                        "mean": statistics.fmean(vals),
                        "median": statistics.median(vals),
                        "n": len(vals),
                    }
        out[eps] = per
    return out


def table(record: dict) -> str:
    lines = [
        f"Held-out Heston surfaces with a discrepancy term ({record['settings']['method']} "
        f"z): {record['surfaces_done']} "
        "surfaces; RMSE in vol points over the hidden cells / coverage of the hidden cells "
        "by the 90 % band, mean over the surfaces",
        "",
        "| pattern | " + " | ".join(f"ε = {e}" for e in record["summary"]) + " |",
        "|---|" + "---|" * len(record["summary"]),
    ]
    for pattern in fit.PATTERNS[1:]:
        cells = []
        for per in record["summary"].values():
            v = per.get(pattern, {})
            if not v:
                cells.append("–")
                continue
            cells.append(f"{v['rmse_hidden']['mean']:.3f} / {v['coverage90']['mean']:.3f}")
        lines.append(f"| {pattern} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Validation log-likelihood of the residuals (nats per surface): "
        + ", ".join(f"ε = {e}: {v:.1f}" for e, v in record["validation_loglik"].items())
    )
    return "\n".join(lines) + "\n"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--grid", choices=("notes", "small"), default="notes")
    p.add_argument("--surfaces", type=int, default=100)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument(
        "--eps",
        nargs="+",
        default=["auto"],
        help="nuggets (data units squared), or 'auto': chosen by the validation surfaces' "
        "likelihood (pyrovae's GaussianDiscrepancy)",
    )
    p.add_argument(
        "--reference",
        choices=("train", "random"),
        default="train",
        help="the rows whose residuals give S: the training surfaces (in-sample), or "
        "--ref-surfaces surfaces with random parameters (out-of-sample)",
    )
    p.add_argument("--ref-surfaces", type=int, default=1000, help="random reference surfaces")
    p.add_argument("--ref-seed", type=int, default=3, help="seed of the reference surfaces")
    p.add_argument("--val-surfaces", type=int, default=100, help="validation surfaces")
    p.add_argument("--val-seed", type=int, default=1, help="seed of the validation surfaces")
    p.add_argument(
        "--model",
        choices=("mlp", "pricer"),
        default="mlp",
        help="the decoder: the notes' MLP (rows in standardized total variance) or the "
        "pricer decoder (rows in implied vol), both from OUT/heston_fit/",
    )
    p.add_argument(
        "--method",
        choices=("map", "laplace", "nuts"),
        default="map",
        help="how z is set: its MAP (plug-in), the Laplace approximation at the MAP "
        "(--draws draws), or NUTS",
    )
    p.add_argument(
        "--steps", type=int, default=300, help="Adam steps (L-BFGS iterations) of the MAP z"
    )
    p.add_argument(
        "--optimizer",
        choices=("adam", "lbfgs"),
        default="adam",
        help="the MAP z's optimizer (map, laplace): Adam at lr 0.05, or L-BFGS",
    )
    p.add_argument(
        "--float64",
        action="store_true",
        help="evaluate the decoder in float64 (map, laplace): the pricer decoder's "
        "float32 output rounds implied vols by about 1e-8, more than the discrepancy's "
        "smallest scales, which makes the MAP loss rough",
    )
    p.add_argument("--warmup", type=int, default=200, help="NUTS warm-up (--method nuts)")
    p.add_argument("--draws", type=int, default=200, help="draws of z (nuts, laplace)")
    p.add_argument(
        "--scale",
        choices=("fixed", "infer", "nugget", "calibrated", "conformal"),
        default="fixed",
        help="the discrepancy's scale s: 1, sampled with z (--method nuts) on all of Σ, "
        "sampled on the nugget alone (Σ = S + s ε I), fixed per observation pattern "
        "by the validation surfaces' conditional likelihood (GaussianDiscrepancy's "
        "calibration rows), or (--method map) the band's z per pattern from the MAP "
        "plug-in's errors on --cal-surfaces validation surfaces (split conformal)",
    )
    p.add_argument(
        "--cal-surfaces",
        type=int,
        default=None,
        help="--scale conformal: the first N validation surfaces (default --val-surfaces)",
    )
    p.add_argument(
        "--cal-cells", type=int, default=50, help="--scale conformal: scores kept per pattern"
    )
    p.add_argument("--tau", type=float, default=1.0, help="sd of log s under its prior")
    p.add_argument("--name", default="heston_discrepancy", help="name of the outputs")
    p.add_argument(
        "--reverse",
        action="store_true",
        help="go through the surfaces from the last: a second process on the same folder "
        "then meets the first in the middle",
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="benchmarks/results")
    args = p.parse_args(argv)
    try:
        args.eps = [e if e == "auto" else float(e) for e in args.eps]
    except ValueError:
        p.error("every --eps must be a number > 0 or 'auto'")
    if args.reference == "random" and args.ref_seed in (args.seed, args.val_seed):
        p.error("--ref-seed must differ from --seed and --val-seed (other surfaces)")
    if args.model == "pricer" and args.reference == "train":
        p.error("--model pricer needs --reference random (the training rows are the MLP's)")
    if args.float64 and (args.method == "nuts" or args.model != "pricer"):
        p.error("--float64 is for --model pricer with --method map or laplace")
    if args.scale == "conformal" and (args.method != "map" or len(args.eps) > 1):
        p.error("--scale conformal is for --method map (the plug-in's band) and one --eps")
    if args.cal_surfaces is None:
        args.cal_surfaces = args.val_surfaces
    if args.cal_surfaces < 1 or args.cal_cells < 1:
        p.error("--cal-surfaces and --cal-cells must be >= 1")
    if args.ref_surfaces < 2:
        p.error("--ref-surfaces must be >= 2")
    if args.surfaces < 1 or args.steps < 1 or any(e != "auto" and not e > 0 for e in args.eps):
        p.error("--surfaces and --steps must be >= 1 and every --eps > 0 or 'auto'")
    return args


def run_surfaces(folder, prefix: str, seed: int, truths, fingerprint, ctx, args) -> list:
    """:func:`fit_surface` on every surface of ``truths`` (drawn with ``seed``), one JSON
    per surface in ``folder`` (``PREFIX-SEED-III.json``): a rerun with the same settings
    resumes where the last one stopped; ``args.reverse`` goes from the last surface."""
    records = []
    n = len(truths)
    for i in range(n - 1, -1, -1) if args.reverse else range(n):
        path = folder / f"{prefix}-{seed}-{i:03d}.json"
        if path.exists():
            saved = json.loads(path.read_text())
            if saved.get("settings") == json.loads(json.dumps(fingerprint)):
                records.append(saved["record"])
                continue
        records.append(fit_surface(i, truths[i], ctx, args, seed=seed))
        atomic_write_text(path, json.dumps({"settings": fingerprint, "record": records[-1]}))
        print(f"{prefix} {i}: {json.dumps(records[-1]['eps'])[:160]}", flush=True)
    return sorted(records, key=lambda r: r["surface"])


@restores_threads
def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    grid = dict(fit.SMALL) if args.grid == "small" else {}
    out = Path(args.out)
    folder = out / "heston_fit"
    model_path = folder / f"{args.model}.pt"
    if not model_path.exists():
        raise SystemExit(f"no {model_path}: run bench_heston_fit.py with --out {out} first")
    mlp = load(model_path)  # the decoder's estimator (the MLP's or the pricer's)
    data = load_data("heston", scale="standardize", data_options=grid)
    setting = fit.Setting(grid, data)
    dtype = torch.float64 if args.float64 else torch.float32
    if args.model == "mlp":
        to_rows, to_iv = setting.mlp_rows, setting.mlp_iv
    else:  # the pricer decoder's rows are the implied vols themselves

        def to_rows(iv):
            return iv.to(dtype)

        def to_iv(rows):
            return rows.double()

    def random_rows(n: int, seed: int) -> torch.Tensor:
        """Standardized rows of ``n`` surfaces with random parameters (those with every
        kept cell priced)."""
        spec = HestonSpec(**grid, params="random", n=n, seed=seed, cells="all")
        iv = torch.from_numpy(heston_surfaces(spec).iv[:, setting.keep])
        return to_rows(iv[~torch.isnan(iv).any(1)]).float()

    def residuals(rows: torch.Tensor) -> torch.Tensor:
        """The decoder's residuals, 100 rows at a time (the pricer's quadrature is
        large)."""
        return torch.cat([mlp.residuals(c) for c in rows.split(100)]).double()

    # S from the training surfaces' residuals, or from out-of-sample surfaces drawn like
    # the held-out ones (another seed); validation surfaces for the nugget: random
    # parameters as the held-out ones, another seed again
    if args.reference == "train":
        reference = data.train
    else:
        reference = random_rows(args.ref_surfaces, args.ref_seed)
    ref_residuals = residuals(reference)
    s_cov = torch.cov(ref_residuals.T)
    val_residuals = residuals(random_rows(args.val_surfaces, args.val_seed))
    eye = torch.eye(s_cov.shape[0], dtype=s_cov.dtype)
    covs, chosen = {}, None
    for e in args.eps:
        if e == "auto":
            # what mlp.discrepancy(reference, X_val=...) builds, from the residuals above
            found = GaussianDiscrepancy.from_residuals(ref_residuals, validation=val_residuals)
            covs["auto"], chosen = found.covariance, found.nugget
        else:
            covs[float(e)] = s_cov + float(e) * eye
    held = HestonSpec(**grid, params="random", n=args.surfaces, seed=args.seed, cells="all")
    truths = torch.from_numpy(heston_surfaces(held).iv[:, setting.keep])

    def noise(e, c):
        if args.scale == "nugget":  # the scale multiplies the nugget alone
            eps = chosen if e == "auto" else e
            return NuggetScaledDiscrepancy(c, "nugget", args.tau, nugget=eps)
        return GaussianDiscrepancy(
            c,
            infer_scale=args.scale == "infer",
            scale_prior_sd=args.tau,
            calibration=val_residuals if args.scale == "calibrated" else None,
        )

    noises = {e: noise(e, c) for e, c in covs.items()}
    if args.float64:
        # the same weights evaluated in float64 for the fits; S and ε above come from
        # the float32 residuals, whose rounding (about 1e-8 in implied vol) keeps Σ's
        # smallest scales above float64's resolution
        mlp.module_.double()
    ctx = {
        "setting": setting,
        "mlp": mlp,
        "mean_fn": fit.frozen_mean(mlp),
        "dtype": dtype,
        "to_rows": to_rows,
        "to_iv": to_iv,
        "covs": covs,
        "noises": noises,
    }
    # one JSON per surface in OUT/NAME/: a rerun resumes where the last one stopped
    folder = out / args.name
    folder.mkdir(parents=True, exist_ok=True)
    skip = {"out", "surfaces", "threads", "reverse"}
    # the settings of the folders written before --optimizer and --float64
    skip |= {k for k, v in (("optimizer", "adam"), ("float64", False)) if getattr(args, k) == v}
    if args.reference == "train":  # the settings of the folders written before --reference
        skip |= {"reference", "ref_surfaces", "ref_seed"}
    if args.model == "mlp":  # the settings of the folders written before --model
        skip.add("model")
    if args.scale != "conformal":  # the settings of the folders written before conformal
        skip |= {"cal_surfaces", "cal_cells"}
    fingerprint = {k: v for k, v in vars(args).items() if k not in skip}
    calibration = None
    if args.scale == "conformal":
        # the MAP plug-in on the validation surfaces (their own masks), whose
        # standardized errors give each pattern's band z; the held-out surfaces' records
        # then depend on those z
        spec = HestonSpec(
            **grid, params="random", n=args.cal_surfaces, seed=args.val_seed, cells="all"
        )
        cal_truths = torch.from_numpy(heston_surfaces(spec).iv[:, setting.keep])
        cal = run_surfaces(
            folder,
            "calibration",
            args.val_seed,
            cal_truths,
            fingerprint,
            {**ctx, "cal_cells": args.cal_cells},
            args,
        )
        calibration = {repr(e): conformal_z(cal, e) for e in covs}
        ctx["band_z"] = calibration[repr(args.eps[0])]
        fingerprint = {**fingerprint, "band_z": {str(j): z for j, z in ctx["band_z"].items()}}
    records = run_surfaces(folder, "surface", args.seed, truths, fingerprint, ctx, args)
    record = {
        "grid": args.grid,
        "surfaces_done": len(records),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "auto_nugget": chosen,
        "conformal_z": calibration,
        "validation_loglik": {
            repr(e): validation_loglik(c, val_residuals) for e, c in covs.items()
        },
        "summary": summarize(records, covs),
        "surfaces": records,
        "machine": machine_info(args.threads),
    }
    write_outputs(out, args.name, record, table(record))
    return record


if __name__ == "__main__":
    print(table(main()))
