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
* ``throughput.json``: training images per second of the point decoder and the
  ``--variants`` on the whole
  training split, one epoch of each in turn, ``--rounds`` rounds (interleaved, so that
  the machine's load hits each variant alike); the median ratio to the point decoder.

``--suite shift`` runs two more out-of-distribution settings (issue 18's list):

* ``shift_{variant}_s{seed}.json``: the VAE trained on the whole digits training split
  (as above); in-distribution the test digits, out of distribution the generated
  ``shapes`` images (:mod:`pyrovae.data.shapes`, the full 1,800-image grid) brought from
  32 x 32 to the digits' 8 x 8 in two ways: 4 x 4 blocks averaged and thresholded at 0.5
  like the digits (thin shapes, about 2.5 lit pixels against the digits' 19), and max-pooled
  (a block is lit where any pixel is above 0.5; key ``max_pooled``).
* ``tabular_{variant}_s{seed}.json``: scikit-learn's breast-cancer table (569 x 30),
  split 60/20/20 by a seeded permutation, standardized with the training split's means
  and standard deviations, ``gaussian-learned`` likelihood; in distribution the test
  rows, out of distribution the test rows with every column permuted independently
  (same marginals, correlations broken).

``--suite mnist`` measures small data on static binarized MNIST (read from
``--mnist-dir``, never stored here): ``mnist_{variant}_n{N}_s{seed}.json``, a VAE
trained on the first N images of the training file with early stopping on 500 held-out
training images (rows 3,000 to 3,499, never trained on), scored on the first
``--mnist-val`` images of the validation file (K, S as above).

``--suite diagnose`` (``diagnose_{variant}_n{N}_s{seed}.json``) takes the small-data fits
of the digits apart on the validation split (see :func:`diagnose_one`).

``summary.json`` and ``summary.md`` collect the means and standard errors over seeds
(``summary_shift.md`` and ``summary_mnist.md`` for the other suites).

    OMP_NUM_THREADS=1 python benchmarks/bench_bayes_decoder.py \
        --out benchmarks/results/bayes_decoder
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import statistics
import sys
import time
from pathlib import Path
from unittest import mock

import pyro
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_info  # noqa: E402

from pyrovae.analysis.epistemic import auroc, epistemic_scores  # noqa: E402
from pyrovae.api import VAE  # noqa: E402
from pyrovae.data import load_data  # noqa: E402
from pyrovae.models.bayesian import DecoderWeights  # noqa: E402

VARIANTS = {
    "point": {},
    "all": {"bayesian_decoder": True, "bayesian_layers": "all"},
    "last": {"bayesian_decoder": True, "bayesian_layers": "last"},
    # a tighter prior, N(0, 0.1^2): weights the data do not need stay near 0 with little noise
    "all-s0.1": {"bayesian_decoder": True, "bayesian_layers": "all", "decoder_prior_scale": 0.1},
    "last-s0.1": {"bayesian_decoder": True, "bayesian_layers": "last", "decoder_prior_scale": 0.1},
    # a tempered weight term: the objective counts 0.1 x KL(q(θ) || p(θ)) (an experiment of
    # this benchmark, see weight_kl_factor; not a pyrovae option)
    "all-t0.1": {"bayesian_decoder": True, "bayesian_layers": "all", "weight_kl_factor": 0.1},
    "last-t0.1": {"bayesian_decoder": True, "bayesian_layers": "last", "weight_kl_factor": 0.1},
    # the untempered posterior reached through a KL warm-up: beta (on the z sites and, with
    # beta_weights, on the weight sites) rises linearly from 0 to 1 over the first third of
    # the epoch cap, then the objective is the ELBO (early stopping waits for the warm-up)
    "all-warm": {
        "bayesian_decoder": True,
        "bayesian_layers": "all",
        "beta_weights": True,
        "warmup_fraction": 1 / 3,
    },
    "last-warm": {
        "bayesian_decoder": True,
        "bayesian_layers": "last",
        "beta_weights": True,
        "warmup_fraction": 1 / 3,
    },
    # the rank-1 multiplicative posterior: W = W_bar * (r s^T), r and s ~ N(1, 1) a priori,
    # W_bar and the biases point estimates (weight_posterior="rank1")
    "all-r1": {"bayesian_decoder": True, "bayesian_layers": "all", "weight_posterior": "rank1"},
    "last-r1": {"bayesian_decoder": True, "bayesian_layers": "last", "weight_posterior": "rank1"},
    # ... with a tighter prior on the factors, N(1, 0.3^2)
    "last-r1-s0.3": {
        "bayesian_decoder": True,
        "bayesian_layers": "last",
        "weight_posterior": "rank1",
        "decoder_prior_scale": 0.3,
    },
    # a uniform mixture of K = 4 rank-1 posteriors sharing W_bar (weight_posterior=
    # "rank1-mixture"; Dusenberry et al.'s ensemble of rank-1 components)
    "last-r1mix": {
        "bayesian_decoder": True,
        "bayesian_layers": "last",
        "weight_posterior": "rank1-mixture",
    },
    # the rank-1 posterior with its factor means held at 1 (weight_posterior=
    # "rank1-noise"): only multiplicative noise around W_bar, with learned per-unit
    # scales, as in variational Gaussian dropout (Kingma et al. 2015)
    "last-r1-noise": {
        "bayesian_decoder": True,
        "bayesian_layers": "last",
        "weight_posterior": "rank1-noise",
    },
    # ... with a tighter prior on the factors, N(1, 0.3^2): the KL pulls the noise scales
    # towards 0.3 instead of 1
    "last-r1-noise-s0.3": {
        "bayesian_decoder": True,
        "bayesian_layers": "last",
        "weight_posterior": "rank1-noise",
        "decoder_prior_scale": 0.3,
    },
    "all-r1-noise": {
        "bayesian_decoder": True,
        "bayesian_layers": "all",
        "weight_posterior": "rank1-noise",
    },
}
#: The variants run by default and timed for throughput.
MAIN_VARIANTS = ("point", "all", "last")


def data():
    d = load_data("digits")
    return [(s > 0.5).float() for s in (d.train, d.val, d.test)]


#: Held-out training images of binarized MNIST for early stopping (never trained on).
MNIST_STOP = (3000, 3500)


def shapes_as_digits(pool: str = "avg") -> torch.Tensor:
    """The shapes grid at the digits' resolution, shape (1800, 1, 8, 8): each 4 x 4 block
    averaged and thresholded at 0.5 like the digits (``pool="avg"``; thin shapes of about
    2.5 lit pixels), or lit where any of its pixels is above 0.5 (``"max"``; thicker)."""
    from pyrovae.data.shapes import make_shapes

    x, _ = make_shapes()
    x = x.reshape(x.shape[0], 1, 32, 32).float()
    pooled = {"avg": torch.nn.functional.avg_pool2d, "max": torch.nn.functional.max_pool2d}
    return (pooled[pool](x, 4) > 0.5).float()


def tabular(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Breast-cancer rows split 60/20/20 by ``seed`` and standardized with the training
    split's statistics."""
    from sklearn.datasets import load_breast_cancer

    x = torch.as_tensor(load_breast_cancer().data, dtype=torch.float32)
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
    a, b = int(0.6 * len(perm)), int(0.8 * len(perm))
    train, val, test = x[perm[:a]], x[perm[a:b]], x[perm[b:]]
    mu, sd = train.mean(0), train.std(0)
    return tuple((s - mu) / sd for s in (train, val, test))


def shuffle_columns(x: torch.Tensor, seed: int) -> torch.Tensor:
    """Every column of ``x`` permuted independently over the rows."""
    g = torch.Generator().manual_seed(seed)
    cols = [x[torch.randperm(x.shape[0], generator=g), j] for j in range(x.shape[1])]
    return torch.stack(cols, 1)


def mnist(args) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(training images, early-stopping images, validation images) of binarized MNIST."""
    from _common import load_binarized_mnist

    train = load_binarized_mnist(args.mnist_dir, max_rows=MNIST_STOP[1])
    val = load_binarized_mnist(args.mnist_dir / "binarized_mnist_valid.amat", args.mnist_val)
    return train[: MNIST_STOP[0]], train[MNIST_STOP[0] :], val


def shifts(x: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"inverted": 1.0 - x, "flipped": x.flip(-1)}


@contextlib.contextmanager
def weight_kl_factor(factor: float | None):
    """Within the block, the weight sites of every Bayesian decoder are scaled by
    ``factor`` on top of their B / N, in the model and the guide alike, so that the
    objective counts ``factor`` x KL(q(θ) || p(θ)) (a tempered, "cold" weight term; the
    likelihood and the z KL are unchanged). Done through the ``beta`` that the weight
    sites take with ``beta_weights``; None: nothing changes."""
    if factor is None:
        yield
        return
    original = DecoderWeights.sites

    def sites(self, batch, beta=1.0, guide=False):
        self.beta_weights = True
        return original(self, batch, float(factor), guide)

    with mock.patch.object(DecoderWeights, "sites", sites):
        yield


class Tempered(VAE):
    """A VAE whose ``fit`` runs inside :func:`weight_kl_factor` (benchmark only)."""

    def __init__(self, weight_kl_factor: float | None = None, **params):
        super().__init__(**params)
        self.weight_kl_factor = weight_kl_factor

    def fit(self, *a, **kw):
        with weight_kl_factor(self.weight_kl_factor):
            return super().fit(*a, **kw)


def estimator(args, variant: str, seed: int, epochs: int, **kw) -> VAE:
    params = {
        "hidden": tuple(args.hidden),
        "latent_dim": args.latent_dim,
        "likelihood": "bernoulli",
    } | kw
    spec = dict(VARIANTS[variant])
    factor = spec.pop("weight_kl_factor", None)
    warmup = spec.pop("warmup_fraction", None)
    if warmup is not None:
        spec |= {"beta_schedule": "linear", "beta_warmup": max(1.0, warmup * epochs)}
    params |= dict(
        batch_size=args.batch_size,
        learning_rate=args.lr,
        epochs=epochs,
        patience=args.patience,
        seed=seed,
        **spec,
    )
    return Tempered(factor, **params) if factor is not None else VAE(**params)


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


def score_shift(args, est, seed: int, x_in, x_out) -> dict:
    """AUROC of -log p(x) and (Bayesian decoders) of the epistemic score, ``x_in``
    against ``x_out``; and the mean -log p(x) of each."""
    bayes = est.module_.decoder_weights is not None
    scores = {}
    for name, x in (("in", x_in), ("out", x_out)):
        pyro.set_rng_seed(seed)
        nll = -est.log_likelihood(x, samples=args.samples, weight_draws=args.weight_draws)
        scores[name] = {"nll": nll.numpy()}
        if bayes:
            pyro.set_rng_seed(seed)
            scores[name]["epistemic"] = epistemic_scores(
                est.module_, est.as_input(x), draws=args.split_draws
            ).numpy()
    rec = {
        "n_in": int(x_in.shape[0]),
        "n_out": int(x_out.shape[0]),
        "nll_in": float(scores["in"]["nll"].mean()),
        "nll_out": float(scores["out"]["nll"].mean()),
        "auroc": {k: auroc(scores["in"][k], scores["out"][k]) for k in scores["in"]},
    }
    return rec


def fit_record(est, variant, n, seed, fit_s) -> dict:
    return {
        "variant": variant,
        "n": n,
        "seed": seed,
        "epochs": est.n_epochs_,
        "best_epoch": est.best_epoch_,
        "stopped_early": bool(est.stopped_early_),
        "fit_seconds": fit_s,
    }


def shift_one(args, variant: str, seed: int) -> dict:
    """Digits against shapes (the whole digits training split)."""
    train, val, test = data()
    epochs = max(1, math.ceil(args.steps / math.ceil(train.shape[0] / args.batch_size)))
    t0 = time.perf_counter()
    est = estimator(args, variant, seed, epochs).fit(train, X_val=val)
    rec = fit_record(est, variant, train.shape[0], seed, time.perf_counter() - t0)
    rec["shift"] = "digits vs shapes (8 x 8: average-pooled, thresholded)"
    rec |= score_shift(args, est, seed, test, shapes_as_digits("avg"))
    rec["max_pooled"] = score_shift(args, est, seed, test, shapes_as_digits("max"))
    return rec


def tabular_one(args, variant: str, seed: int) -> dict:
    """Breast-cancer test rows against the same rows with columns shuffled."""
    train, val, test = tabular(seed)
    epochs = max(1, math.ceil(args.steps / math.ceil(train.shape[0] / args.batch_size)))
    t0 = time.perf_counter()
    est = estimator(args, variant, seed, epochs, likelihood="gaussian-learned", latent_dim=4).fit(
        train, X_val=val
    )
    rec = fit_record(est, variant, train.shape[0], seed, time.perf_counter() - t0)
    rec["shift"] = "breast-cancer rows vs rows with columns shuffled independently"
    return rec | score_shift(args, est, seed, test, shuffle_columns(test, seed + 1))


def mnist_one(args, variant: str, n: int, seed: int) -> dict:
    """Held-out -log p(x) on binarized-MNIST validation images for N training images."""
    train, stop, val = mnist(args)
    epochs = max(1, math.ceil(args.steps / math.ceil(n / args.batch_size)))
    t0 = time.perf_counter()
    est = estimator(
        args, variant, seed, epochs, hidden=tuple(args.mnist_hidden), latent_dim=16
    ).fit(train[:n], X_val=stop)
    rec = fit_record(est, variant, n, seed, time.perf_counter() - t0)
    pyro.set_rng_seed(seed)
    ll = est.log_likelihood(val, samples=args.samples, weight_draws=args.weight_draws)
    rec |= {
        "nll": float(-ll.mean()),
        "nll_se": float(ll.std() / math.sqrt(ll.numel())),
        "n_val": int(val.shape[0]),
        "samples": args.samples,
        "weight_draws": args.weight_draws,
        "hidden": list(args.mnist_hidden),
        "latent_dim": 16,
    }
    if est.module_.decoder_weights is not None:
        with torch.no_grad():
            rec["weight_kl"] = float(est.module_.decoder_weights.kl())
    return rec


def diagnose_one(args, variant: str, n: int, seed: int) -> dict:
    """Where the Bayesian decoder's small-data gap comes from, on the digits' validation
    split (never the test split): the fit of the digits protocol, then from
    ``--diagnose-draws`` draws θ_s the per-draw log p(x|θ_s) (K importance samples each),
    giving the predictive estimate with S = 10 (the mean over disjoint groups of 10) and
    with all draws, E_q(θ)[log p(x|θ)], the posterior-mean decoder, and the guide's
    scales against the prior's."""
    train, val, _ = data()
    epochs = max(1, math.ceil(args.steps / math.ceil(n / args.batch_size)))
    t0 = time.perf_counter()
    est = estimator(args, variant, seed, epochs).fit(train[:n], X_val=val)
    rec = fit_record(est, variant, n, seed, time.perf_counter() - t0)
    weights = est.module_.decoder_weights
    pyro.set_rng_seed(seed)
    if weights is None:
        ll = est.log_likelihood(val, samples=args.samples)
        return rec | {"nll_point": float(-ll.mean())}
    per = []
    for theta in weights.draws(args.diagnose_draws):
        with weights.fixed(theta):
            per.append(est.log_likelihood(val, samples=args.samples))
    per = torch.stack(per)  # (S, N)
    s = per.shape[0]
    groups = per[: s - s % 10].reshape(-1, 10, per.shape[1])
    log10 = (groups.logsumexp(1) - math.log(10)).mean(0)
    with weights.fixed():
        ll_mean = est.log_likelihood(val, samples=args.samples)
    guide = weights.guide_distributions().values()
    scales = torch.cat([q.base_dist.scale.detach().reshape(-1) for q in guide])
    prior = float(est.module_.decoder_weights.prior_scale)
    with torch.no_grad():
        kl = float(weights.kl())
    return rec | {
        "split": "validation",
        "draws": s,
        "nll_predictive_S10": float(-log10.mean()),
        f"nll_predictive_S{s}": float(-(per.logsumexp(0) - math.log(s)).mean()),
        "nll_expected_over_theta": float(-per.mean()),
        "nll_posterior_mean_weights": float(-ll_mean.mean()),
        "sd_over_theta_of_log_p": float(per.std(0).mean()),
        "weight_kl": kl,
        "weight_kl_per_image": kl / n,
        "guide_scale_median": float(scales.median()),
        "guide_scale_share_above_half_prior": float((scales > 0.5 * prior).float().mean()),
        "num_random": int(scales.numel()),
    }


def summarize_shift(out: Path) -> None:
    lines = [
        "| shift | decoder | seeds | -log p in / out (nats) | AUROC -log p(x) | AUROC epistemic |",
        "|---|---|---|---|---|---|",
    ]
    for prefix, label, part in (
        ("shift", "shapes, average-pooled", None),
        ("shift", "shapes, max-pooled", "max_pooled"),
        ("tabular", "breast cancer, columns shuffled", None),
    ):
        for variant in VARIANTS:
            rs = [json.loads(p.read_text()) for p in sorted(out.glob(f"{prefix}_{variant}_s*"))]
            if part is not None:
                rs = [r[part] for r in rs]
            if not rs:
                continue
            epi = [r["auroc"]["epistemic"] for r in rs if "epistemic" in r["auroc"]]
            lines.append(
                f"| {label} | {variant} | {len(rs)} "
                f"| {statistics.fmean(r['nll_in'] for r in rs):.2f} / "
                f"{statistics.fmean(r['nll_out'] for r in rs):.2f} "
                f"| {statistics.fmean(r['auroc']['nll'] for r in rs):.3f} "
                f"| {f'{statistics.fmean(epi):.3f}' if epi else '-'} |"
            )
    (out / "summary_shift.md").write_text("\n".join(lines) + "\n")


def summarize_mnist(out: Path) -> None:
    """Mean ± s.e. over seeds of the validation -log p(x), the mean per-image s.e. of
    one seed's figure, and the difference to the point decoder of the same seed."""
    rows = [json.loads(p.read_text()) for p in sorted(out.glob("mnist_*.json"))]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["n"], r["variant"]), []).append(r)
    point = {(r["n"], r["seed"]): r["nll"] for r in rows if r["variant"] == "point"}

    def mse(values) -> str:
        m = statistics.fmean(values)
        if len(values) < 2:
            return f"{m:.2f}"
        return f"{m:.2f} ± {statistics.stdev(values) / math.sqrt(len(values)):.2f}"

    lines = [
        "| N | decoder | seeds | validation -log p(x) (nats) | per-image s.e. "
        "| minus point (same seed) | epochs | stopped early |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (n, variant), rs in sorted(
        groups.items(), key=lambda kv: (kv[0][0], list(VARIANTS).index(kv[0][1]))
    ):
        diff = [r["nll"] - point[n, r["seed"]] for r in rs if (n, r["seed"]) in point]
        lines.append(
            f"| {n} | {variant} | {len(rs)} | {mse([r['nll'] for r in rs])} "
            f"| {statistics.fmean(r['nll_se'] for r in rs):.2f} "
            f"| {mse(diff) if diff and variant != 'point' else '–'} "
            f"| {statistics.fmean(r['epochs'] for r in rs):.0f} "
            f"| {sum(r['stopped_early'] for r in rs)}/{len(rs)} |"
        )
    (out / "summary_mnist.md").write_text("\n".join(lines) + "\n")


def run_settings(out: Path, settings, fn) -> None:
    """Run ``fn(*key)`` for every setting whose JSON does not exist yet."""
    for name, key in settings:
        path = out / f"{name}.json"
        if path.exists():
            continue
        rec = fn(*key)
        path.write_text(json.dumps(rec, indent=1))
        print(json.dumps({"setting": name} | {k: rec.get(k) for k in ("nll", "auroc")}), flush=True)


def throughput(args) -> dict:
    """Images per second of ``--throughput-epochs`` training epochs on the whole training
    split, timed around the trainer alone (building the model is not counted)."""
    train, _, _ = data()
    timed = ["point", *[v for v in args.variants if v != "point"]]
    per: dict[str, list[float]] = {v: [] for v in timed}
    for r in range(args.rounds):
        for v in timed:
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
        for v in timed
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
        "settings": vars(args) | {"out": str(args.out), "mnist_dir": str(args.mnist_dir)},
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
    p.add_argument("--suite", choices=("digits", "shift", "mnist", "diagnose"), default="digits")
    p.add_argument(
        "--mnist-dir",
        type=Path,
        default=Path("../shared/data/binarized_mnist"),
        help="folder of binarized_mnist_train.amat and binarized_mnist_valid.amat",
    )
    p.add_argument("--diagnose-draws", type=int, default=100, help="weight draws, diagnose")
    p.add_argument("--mnist-val", type=int, default=1000, help="validation images scored")
    p.add_argument("--mnist-hidden", type=int, nargs="+", default=[128])
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.suite == "shift":
        settings = [
            (f"{kind}_{v}_s{seed}", (kind, v, seed))
            for seed in args.seeds
            for kind in ("shift", "tabular")
            for v in args.variants
        ]
        one = {"shift": shift_one, "tabular": tabular_one}
        run_settings(args.out, settings, lambda kind, v, seed: one[kind](args, v, seed))
        summarize_shift(args.out)
        return 0
    if args.suite == "diagnose":
        settings = [
            (f"diagnose_{v}_n{n}_s{seed}", (v, n, seed))
            for seed in args.seeds
            for n in args.sizes
            for v in args.variants
        ]
        run_settings(args.out, settings, lambda v, n, seed: diagnose_one(args, v, n, seed))
        return 0
    if args.suite == "mnist":
        settings = [
            (f"mnist_{v}_n{n}_s{seed}", (v, n, seed))
            for seed in args.seeds
            for n in args.sizes
            for v in args.variants
        ]
        run_settings(args.out, settings, lambda v, n, seed: mnist_one(args, v, n, seed))
        summarize_mnist(args.out)
        return 0
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
