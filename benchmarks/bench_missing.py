"""Imputation of entries missing at random: a VAE trained with ``--missing mask`` and
``--mask-rate`` against mean imputation and scikit-learn's ``IterativeImputer``.

Data: scikit-learn's breast-cancer table (569 rows, 30 features), standardized with the
complete data's means and sds (the same units for every method). For each rate
(default 10 %, 30 %, 50 %) entries are removed completely at random (a row keeps at least
one entry) with a seed of its own; every method sees the same incomplete table and
imputes its missing entries (the transductive setting of imputation benchmarks: fit on
the incomplete table, impute it). Reported, over the missing entries:

* RMSE of the point imputation against the true values (standardized units);
* coverage of the central 90 % band: the share of true values inside it.

Methods and their bands:

* ``mean``: the observed column mean; band mean +- 1.645 observed column sd (a normal
  approximation of the column's marginal);
* ``iterative``: ``IterativeImputer`` (BayesianRidge, 10 rounds) for the point value;
  the band from the 5 % and 95 % quantiles of ``--imputations`` multiple imputations
  with ``sample_posterior=True`` (different seeds);
* ``vae``: ``VAE(missing="mask", mask_rate=...)`` with a heteroscedastic Gaussian
  likelihood, then ``condition(method="guide")``: the posterior predictive mean of the
  missing entries and the band of its draws; ``vae-set`` the same with the Partial
  VAE's set encoder (``mask_encoder="set"``).

Resumable: each finished (rate, method) is written to ``--out``/missing.json at once
(atomically) and skipped by a later run with the same settings.

    python benchmarks/bench_missing.py --out benchmarks/results/
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_info  # noqa: E402

from pyrovae.api import VAE  # noqa: E402
from pyrovae.atomic import atomic_write_text  # noqa: E402

Z90 = 1.6448536269514722  # the 95 % quantile of N(0, 1)


def load_table() -> np.ndarray:
    from sklearn.datasets import load_breast_cancer

    x = load_breast_cancer().data.astype(np.float64)
    return (x - x.mean(0)) / x.std(0)


def remove(x: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """``x`` with each entry set to NaN with probability ``rate`` (each row keeps one)."""
    rng = np.random.default_rng(seed)
    holes = rng.random(x.shape) < rate
    full = holes.all(1)
    holes[full, rng.integers(0, x.shape[1], int(full.sum()))] = False
    out = x.copy()
    out[holes] = np.nan
    return out


def score(truth, x_nan, point, lo, hi) -> dict:
    miss = np.isnan(x_nan)
    err = point[miss] - truth[miss]
    inside = (truth[miss] >= lo[miss]) & (truth[miss] <= hi[miss])
    n = int(miss.sum())
    cov = float(inside.mean())
    return {
        "n_missing": n,
        "rmse": float(np.sqrt(np.mean(err**2))),
        "coverage90": cov,
        "coverage90_se": float(np.sqrt(cov * (1 - cov) / n)),
        "band_width90": float(np.mean(hi[miss] - lo[miss])),
    }


def impute_mean(x_nan, args):
    mean, sd = np.nanmean(x_nan, 0), np.nanstd(x_nan, 0)
    point = np.where(np.isnan(x_nan), mean, x_nan)
    return point, point - Z90 * sd, point + Z90 * sd, {}


def impute_iterative(x_nan, args):
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer

    point = IterativeImputer(max_iter=10, random_state=args.seed).fit_transform(x_nan)
    draws = np.stack(
        [
            IterativeImputer(
                max_iter=10, sample_posterior=True, random_state=args.seed + 1 + i
            ).fit_transform(x_nan)
            for i in range(args.imputations)
        ]
    )
    lo, hi = np.quantile(draws, [0.05, 0.95], axis=0)
    return point, lo, hi, {"imputations": args.imputations}


def impute_vae(x_nan, args, mask_encoder: str = "concat"):
    est = VAE(
        missing="mask",
        mask_rate=args.mask_rate,
        mask_encoder=mask_encoder,
        likelihood="gaussian-het",
        latent_dim=args.latent_dim,
        hidden=tuple(args.hidden),
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        patience=0,
        seed=args.seed,
    ).fit(x_nan)
    out = est.condition(x_nan, method="guide", draws=args.draws, levels=(0.9,), seed=args.seed)
    lo, hi = out.bands[0.9]
    point = out.mean.cpu().numpy().astype(np.float64)
    extra = {"epochs": est.n_epochs_, "final_train_loss": est.history_[-1]["train_loss"]}
    return point, lo.cpu().numpy(), hi.cpu().numpy(), extra


def impute_vae_set(x_nan, args):
    return impute_vae(x_nan, args, mask_encoder="set")


METHODS = {
    "mean": impute_mean,
    "iterative": impute_iterative,
    "vae": impute_vae,
    "vae-set": impute_vae_set,
}


def settings(args) -> dict:
    return {
        k: getattr(args, k)
        for k in (
            "rates",
            "seed",
            "epochs",
            "latent_dim",
            "hidden",
            "batch_size",
            "lr",
            "mask_rate",
            "draws",
            "imputations",
        )
    }


def run(args) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    truth = load_table()
    path = Path(args.out) / "missing.json" if args.out else None
    record = {"settings": settings(args), "results": []}
    if path is not None and path.exists():
        old = json.loads(path.read_text())
        if old.get("settings") == record["settings"]:
            record = old  # resume: keep what is done
    done = {(r["rate"], r["method"]) for r in record["results"]}
    record.update(
        data=f"breast_cancer (scikit-learn), {truth.shape[0]} rows x {truth.shape[1]} "
        "features, standardized",
        machine=machine_info(args.threads),
    )
    for rate in args.rates:
        x_nan = remove(truth, rate, args.seed + int(round(rate * 1000)))
        for method in args.methods:
            if (rate, method) in done:
                continue
            t0 = time.perf_counter()
            point, lo, hi, extra = METHODS[method](x_nan, args)
            row = {"rate": rate, "method": method, **score(truth, x_nan, point, lo, hi)}
            row.update(seconds=time.perf_counter() - t0, **extra)
            record["results"].append(row)
            print(
                f"rate {rate:.0%} {method:>9}: RMSE {row['rmse']:.3f}, 90% coverage "
                f"{row['coverage90']:.3f} ({row['seconds']:.0f} s)",
                flush=True,
            )
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return record


def markdown(record: dict) -> str:
    s = record["settings"]
    lines = [
        f"{record['data']}; entries removed completely at random; VAE: latent "
        f"{s['latent_dim']}, hidden {s['hidden']}, {s['epochs']} epochs, --mask-rate "
        f"{s['mask_rate']}, {s['draws']} draws; IterativeImputer bands from "
        f"{s['imputations']} posterior-sampled imputations:",
        "",
        "| missing | method | RMSE | 90 % coverage | ± s.e. | mean band width | seconds |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(record["results"], key=lambda r: (r["rate"], r["method"])):
        lines.append(
            f"| {r['rate']:.0%} | {r['method']} | {r['rmse']:.3f} | {r['coverage90']:.3f} | "
            f"{r['coverage90_se']:.3f} | {r['band_width90']:.2f} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rates", type=float, nargs="+", default=[0.1, 0.3, 0.5])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--epochs", type=int, default=300, help="VAE epochs (default: 300)")
    p.add_argument("--latent-dim", type=int, default=8, help="VAE latent size (default: 8)")
    p.add_argument("--hidden", type=int, nargs="+", default=[128], help="hidden widths")
    p.add_argument("--batch-size", type=int, default=64, help="minibatch (default: 64)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--mask-rate", type=float, default=0.2, help="VAE --mask-rate")
    p.add_argument("--draws", type=int, default=500, help="posterior draws per row")
    p.add_argument("--imputations", type=int, default=10, help="IterativeImputer draws")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch.set_num_threads")
    p.add_argument("--out", metavar="DIR", help="write missing.json and missing.md here")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    record = run(args)
    table = markdown(record)
    print(table)
    if args.out:
        atomic_write_text(Path(args.out) / "missing.md", table)
    return record


if __name__ == "__main__":
    main()
