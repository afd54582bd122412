"""Bayesian decoder weights against the point decoder: small data, OOD, cost (issue 18).

Settings (one JSON file each under ``--out``, skipped when it exists, so an interrupted
run resumes where it stopped):

* ``fit_{variant}_n{N}_s{seed}.json``: a VAE (MLP, Bernoulli likelihood) trained on the
  first N training digits (thresholded at 0.5), with early stopping on the validation
  split (``--patience`` epochs) and at most ``--steps`` optimizer steps; variants
  ``point`` (point weights), ``all`` and ``last`` (Bayesian decoder, every layer or the
  output layer, prior N(0, 1)), and on request ``all-s0.1`` and ``last-s0.1`` (prior
  N(0, 0.1^2)). Recorded: the test split's -log p(x) (nats per image; K importance
  samples of z, times S weight draws for the Bayesian decoders: the predictive
  estimator of docs/bayesian-decoder.md), and the AUROC of the out-of-distribution
  scores for the test digits against inverted (1 - x) and left-right flipped digits:
  -log p(x) for every variant, and the epistemic score (variance over weight draws of
  log p(x | E[z|x], θ)) for the Bayesian ones.
* ``throughput.json``: training images per second of the three variants on the whole
  training split, one epoch of each in turn, ``--rounds`` rounds (interleaved, so that
  the machine's load hits each variant alike); the median ratio to the point decoder.

``summary.json`` and ``summary.md`` collect the means and standard errors over seeds.

    OMP_NUM_THREADS=1 python benchmarks/bench_bayes_decoder.py \
        --out benchmarks/results/bayes_decoder
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import pyro
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_info  # noqa: E402

from pyrovae.analysis.epistemic import auroc, epistemic_scores  # noqa: E402
from pyrovae.api import VAE  # noqa: E402
from pyrovae.data import load_data  # noqa: E402

VARIANTS = {
    "point": {},
    "all": {"bayesian_decoder": True, "bayesian_layers": "all"},
    "last": {"bayesian_decoder": True, "bayesian_layers": "last"},
    # a tighter prior, N(0, 0.1^2): weights the data do not need stay near 0 with little noise
    "all-s0.1": {"bayesian_decoder": True, "bayesian_layers": "all", "decoder_prior_scale": 0.1},
    "last-s0.1": {"bayesian_decoder": True, "bayesian_layers": "last", "decoder_prior_scale": 0.1},
}
#: The variants run by default and timed for throughput.
MAIN_VARIANTS = ("point", "all", "last")


def data():
    d = load_data("digits")
    return [(s > 0.5).float() for s in (d.train, d.val, d.test)]


def shifts(x: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"inverted": 1.0 - x, "flipped": x.flip(-1)}


def estimator(args, variant: str, seed: int, epochs: int) -> VAE:
    return VAE(
        hidden=tuple(args.hidden),
        latent_dim=args.latent_dim,
        likelihood="bernoulli",
        batch_size=args.batch_size,
        learning_rate=args.lr,
        epochs=epochs,
        patience=args.patience,
        seed=seed,
        **VARIANTS[variant],
    )


def fit_one(args, variant: str, n: int, seed: int) -> dict:
    train, val, test = data()
    n = min(n, train.shape[0])
    epochs = max(1, math.ceil(args.steps / math.ceil(n / args.batch_size)))
    t0 = time.perf_counter()
    est = estimator(args, variant, seed, epochs).fit(train[:n], X_val=val)
    fit_s = time.perf_counter() - t0
    pyro.set_rng_seed(seed)
    ll = est.log_likelihood(test, samples=args.samples, weight_draws=args.weight_draws)
    out = {
        "variant": variant,
        "n": n,
        "seed": seed,
        "epochs": est.n_epochs_,
        "best_epoch": est.best_epoch_,
        "stopped_early": bool(est.stopped_early_),
        "fit_seconds": fit_s,
        "nll": float(-ll.mean()),
        "nll_se": float(ll.std() / math.sqrt(ll.numel())),
        "ood": {},
    }
    s_in_nll = (-ll).numpy()
    bayes = est.module_.decoder_weights is not None
    if bayes:
        pyro.set_rng_seed(seed)
        s_in_epi = epistemic_scores(est.module_, test, draws=args.split_draws).numpy()
        with torch.no_grad():
            out["weight_kl"] = float(est.module_.decoder_weights.kl())
    for name, x_out in shifts(test).items():
        pyro.set_rng_seed(seed)
        s_out = -est.log_likelihood(x_out, samples=args.samples, weight_draws=args.weight_draws)
        rec = {"nll": auroc(s_in_nll, s_out.numpy())}
        if bayes:
            pyro.set_rng_seed(seed)
            s_out_epi = epistemic_scores(est.module_, x_out, draws=args.split_draws).numpy()
            rec["epistemic"] = auroc(s_in_epi, s_out_epi)
        out["ood"][name] = rec
    return out


def throughput(args) -> dict:
    """Images per second of ``--throughput-epochs`` training epochs on the whole training
    split, timed around the trainer alone (building the model is not counted)."""
    train, _, _ = data()
    per: dict[str, list[float]] = {v: [] for v in MAIN_VARIANTS}
    for r in range(args.rounds):
        for v in MAIN_VARIANTS:
            est = estimator(args, v, r, args.throughput_epochs)
            est.set_params(patience=0)
            est.check_params()
            pyro.set_rng_seed(r)
            est.build(tuple(train.shape[1:]), "bernoulli")
            trainer = est.make_trainer(None, None)
            t0 = time.perf_counter()
            trainer.fit(train, None)
            seconds = time.perf_counter() - t0
            per[v].append(args.throughput_epochs * train.shape[0] / seconds)
    ratios = {
        v: statistics.median(a / b for a, b in zip(per[v], per["point"], strict=True))
        for v in MAIN_VARIANTS
    }
    return {
        "images_per_second": per,
        "median_ratio_to_point": ratios,
        "rounds": args.rounds,
        "epochs_per_round": args.throughput_epochs,
    }


def summarize(out: Path, args) -> dict:
    rows = [json.loads(p.read_text()) for p in sorted(out.glob("fit_*.json"))]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["n"], r["variant"]), []).append(r)

    def mse(values):
        m = statistics.fmean(values)
        se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan
        return m, se

    table = []
    for (n, variant), rs in sorted(
        groups.items(), key=lambda kv: (kv[0][0], list(VARIANTS).index(kv[0][1]))
    ):
        m, se = mse([r["nll"] for r in rs])
        rec = {"n": n, "variant": variant, "seeds": len(rs), "nll": m, "nll_se": se}
        rec["epochs"] = statistics.fmean(r["epochs"] for r in rs)
        for shift in ("inverted", "flipped"):
            rec[f"auroc_nll_{shift}"] = mse([r["ood"][shift]["nll"] for r in rs])[0]
            if variant != "point":
                epi = [r["ood"][shift]["epistemic"] for r in rs]
                rec[f"auroc_epistemic_{shift}"] = mse(epi)[0]
        table.append(rec)
    summary = {
        "machine": machine_info(),
        "settings": vars(args) | {"out": str(args.out)},
        "rows": table,
    }
    tp = out / "throughput.json"
    if tp.exists():
        summary["throughput"] = json.loads(tp.read_text())
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    lines = [
        "| N | decoder | seeds | test -log p(x) (nats) | epochs "
        "| AUROC inverted: -log p / epistemic | AUROC flipped: -log p / epistemic |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in table:

        def cell(shift, r=r):
            a = f"{r[f'auroc_nll_{shift}']:.3f}"
            e = r.get(f"auroc_epistemic_{shift}")
            return a + (f" / {e:.3f}" if e is not None else "")

        lines.append(
            f"| {r['n']} | {r['variant']} | {r['seeds']} | {r['nll']:.2f} ± {r['nll_se']:.2f} | "
            f"{r['epochs']:.0f} | {cell('inverted')} | {cell('flipped')} |"
        )
    if "throughput" in summary:
        ratios = summary["throughput"]["median_ratio_to_point"]
        lines.append("")
        lines.append(
            "Training throughput relative to the point decoder (median of interleaved rounds): "
            + ", ".join(f"{v} {ratios[v]:.2f}" for v in ratios)
        )
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    return summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/bayes_decoder"))
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000, 100000])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--variants", nargs="+", default=list(MAIN_VARIANTS), choices=list(VARIANTS))
    p.add_argument("--hidden", type=int, nargs="+", default=[64])
    p.add_argument("--latent-dim", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--steps", type=int, default=3000, help="most optimizer steps per fit")
    p.add_argument("--patience", type=int, default=30)
    p.add_argument("--samples", type=int, default=100, help="K importance samples of z")
    p.add_argument("--weight-draws", type=int, default=10, help="S draws of the weights")
    p.add_argument(
        "--split-draws", type=int, default=30, help="weight draws of the epistemic score"
    )
    p.add_argument("--rounds", type=int, default=5, help="interleaved throughput rounds")
    p.add_argument("--throughput-epochs", type=int, default=3, help="epochs per round")
    p.add_argument("--skip-throughput", action="store_true")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for n in args.sizes:
            for variant in args.variants:
                path = args.out / f"fit_{variant}_n{n}_s{seed}.json"
                if path.exists():
                    continue
                rec = fit_one(args, variant, n, seed)
                path.write_text(json.dumps(rec, indent=1))
                print(
                    json.dumps({k: rec[k] for k in ("variant", "n", "seed", "nll", "epochs")}),
                    flush=True,
                )
    if not args.skip_throughput and not (args.out / "throughput.json").exists():
        (args.out / "throughput.json").write_text(json.dumps(throughput(args), indent=1))
    summarize(args.out, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
