"""Image completion with a conditional VAE: -log p(x_missing | x_observed), Pyro's protocol.

Pyro's CVAE example (``examples/cvae``, after Sohn, Lee & Yan 2015) observes 1, 2 or 3
of the four quadrants of an image and predicts the others: with 1 quadrant the bottom
left is observed, with 2 the left half, with 3 all but the bottom right. For each
number of observed quadrants this script trains

* a CVAE (``pyrovae.api.CVAE``) of the missing pixels ``x`` given the observed pixels
  ``c`` (covariates): p(z | c) the conditional prior network (``prior="conditional"``),
  p(x | z, c) a Bernoulli decoder reading ``concat(z, c)``, q(z | x, c);
* Pyro's deterministic baseline: an MLP from the observed to the missing pixels with a
  Bernoulli output (its -log p is the summed binary cross-entropy, exact);
* (with ``--vae-mask-rate`` > 0, the default) the unconditional VAE of the whole images
  with posterior conditioning, the conditioning issue's ``guide`` method: one VAE of
  the same widths trained with random masks (``missing="mask"``, ``mask_rate``), its
  -log p(x_missing | x_observed) from
  :func:`pyrovae.inference.conditioning.conditional_log_likelihood` (self-normalized
  importance sampling with the guide q(z | x_obs, mask) as proposal, K draws);

and reports on held-out images, in nats per image over the missing pixels:

* ``nll``: the importance-sampled -log p(x_missing | x_observed) of the CVAE with K
  draws from q(z | x, c) (K >= 1000; a stochastic upper bound that tightens with K),
  with its standard error over images, and of the baseline;
* ``neg_elbo``: the negative ELBO of the CVAE (``particles`` draws), the number Pyro's
  example reports (its table: 71.8 / 51.0 / 24.2 nats for the CVAE and 100.4 / 61.9 /
  25.4 for the baseline on grey-level MNIST, not comparable with binary data);
* the time per image of each evaluation and of training.

Differences from Pyro's example: binary data (static binarized MNIST, or the digits
thresholded at 0.5) scored by the Bernoulli likelihood, so that -log p is a proper
log-likelihood; the decoder reads the condition as well as z; the prior network reads
the observed pixels only (Pyro's also reads the baseline's prediction); the likelihood
covers the missing pixels only, as Pyro's masked Bernoulli does.

Data: the built-in digits (8x8, offline; trained on the training split with the
validation split for early stopping, evaluated on the test split), or static binarized
MNIST when ``--data mnist`` finds ``binarized_mnist_{train,valid}.amat`` under
``--data-root`` (trained on the first ``--train-rows`` training images, early stopping
on the last 5,000, evaluated on the first ``--eval-rows`` validation images; never
downloaded).

    python benchmarks/bench_cvae_completion.py --out benchmarks/results
    python benchmarks/bench_cvae_completion.py --data mnist \
        --data-root ../shared/data/binarized_mnist --out benchmarks/results
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import load_binarized_mnist, machine_info, write_outputs  # noqa: E402

from pyrovae.api import CVAE, VAE  # noqa: E402
from pyrovae.data import load_data  # noqa: E402
from pyrovae.inference.conditioning import conditional_log_likelihood  # noqa: E402

#: Pyro's CVAE example: its table for grey-level MNIST (negative ELBO / masked BCE).
PYRO_REPORTED = {
    "cvae_neg_elbo": {1: 71.8, 2: 51.0, 3: 24.2},
    "baseline_nll": {1: 100.4, 2: 61.9, 3: 25.4},
}


def observed_mask(side: int, quadrants: int) -> torch.Tensor:
    """``(side, side)`` bool, True where a pixel is observed (Pyro's ``MaskImages``)."""
    if quadrants not in (1, 2, 3):
        raise ValueError(f"quadrants must be 1, 2 or 3; got {quadrants}")
    h = side // 2
    mask = torch.zeros(side, side, dtype=torch.bool)
    if quadrants == 1:
        mask[h:, :h] = True
    else:
        mask[:, :h] = True
        if quadrants == 3:
            mask[:h, :] = True
    return mask


def split_pixels(images: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(missing pixels, observed pixels), each ``(N, count)``, of square images."""
    flat = images.reshape(images.shape[0], -1)
    m = mask.reshape(-1)
    return flat[:, ~m].contiguous(), flat[:, m].contiguous()


def load(args) -> dict:
    """Binary images ``(N, side * side)`` of the training, validation and evaluation sets."""
    if args.data == "mnist":
        root = Path(args.data_root)
        train = load_binarized_mnist(root / "binarized_mnist_train.amat")
        valid = load_binarized_mnist(root / "binarized_mnist_valid.amat", args.eval_rows)
        n = min(args.train_rows, train.shape[0] - 5000)
        return {
            "name": "static binarized MNIST",
            "side": 28,
            "train": train[:n],
            "val": train[-5000:],
            "eval": valid,
            "eval_split": "validation",
        }
    d = load_data("digits")
    binary = [(t.reshape(t.shape[0], -1) > 0.5).float() for t in (d.train, d.val, d.test)]
    return {
        "name": "digits (8x8, thresholded at 0.5)",
        "side": 8,
        "train": binary[0],
        "val": binary[1],
        "eval": binary[2][: args.eval_rows],
        "eval_split": "test",
    }


class Baseline(nn.Module):
    """Pyro's deterministic baseline: observed pixels -> MLP -> Bernoulli logits."""

    def __init__(self, n_in: int, n_out: int, hidden: Sequence[int]) -> None:
        super().__init__()
        layers, width = [], n_in
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, n_out))
        self.net = nn.Sequential(*layers)

    def nll(self, c: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """-log p(x | c) per image: the summed binary cross-entropy."""
        logits = self.net(c)
        return nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)


def train_baseline(x, c, xv, cv, args) -> tuple[Baseline, float, int]:
    """Adam with early stopping on the validation loss (best weights kept)."""
    torch.manual_seed(args.seed)
    net = Baseline(c.shape[1], x.shape[1], args.hidden)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    g = torch.Generator().manual_seed(args.seed)
    best, best_state, since, epochs = math.inf, None, 0, 0
    t0 = time.perf_counter()
    for _ in range(args.epochs):
        epochs += 1
        order = torch.randperm(x.shape[0], generator=g)
        for i in range(0, x.shape[0], args.batch_size):
            idx = order[i : i + args.batch_size]
            loss = net.nll(c[idx], x[idx]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            val = float(net.nll(cv, xv).mean())
        if val < best:
            best, since = val, 0
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
        else:
            since += 1
            if since >= args.patience:
                break
    net.load_state_dict(best_state)
    return net, time.perf_counter() - t0, epochs


def mean_se(v: torch.Tensor) -> tuple[float, float]:
    return float(v.mean()), float(v.std() / math.sqrt(v.numel()))


def train_masked_vae(data: dict, args) -> tuple[VAE, float]:
    """The unconditional VAE of whole images, trained with random masks."""
    est = VAE(
        latent_dim=args.latent_dim,
        hidden=tuple(args.hidden),
        likelihood="bernoulli",
        missing="mask",
        mask_rate=args.vae_mask_rate,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        patience=args.patience,
        seed=args.seed,
        progress=False,
    )
    t0 = time.perf_counter()
    est.fit(data["train"], X_val=data["val"])
    return est, time.perf_counter() - t0


def run_quadrants(data: dict, quadrants: int, args, vae=None) -> dict:
    mask = observed_mask(data["side"], quadrants)
    x, c = split_pixels(data["train"], mask)
    xv, cv = split_pixels(data["val"], mask)
    xe, ce = split_pixels(data["eval"], mask)
    row: dict = {"quadrants": quadrants, "missing_pixels": int(x.shape[1])}

    est = CVAE(
        latent_dim=args.latent_dim,
        hidden=tuple(args.hidden),
        prior="conditional",
        prior_options={"hidden": args.hidden[-1]},
        likelihood="bernoulli",
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        patience=args.patience,
        seed=args.seed,
        progress=False,
    )
    t0 = time.perf_counter()
    est.fit(x, c, xv, y_val=cv)
    row["cvae_train_seconds"] = time.perf_counter() - t0
    row["cvae_epochs"] = est.n_epochs_
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    nll = -est.log_likelihood(xe, samples=args.samples, y=ce)
    row["cvae_seconds_per_image"] = (time.perf_counter() - t0) / xe.shape[0]
    row["cvae_nll"], row["cvae_nll_se"] = mean_se(nll)
    torch.manual_seed(args.seed)
    neg_elbo = -est.elbo(xe, particles=args.particles, y=ce)
    row["cvae_neg_elbo"], row["cvae_neg_elbo_se"] = mean_se(neg_elbo)

    net, seconds, epochs = train_baseline(x, c, xv, cv, args)
    row["baseline_train_seconds"], row["baseline_epochs"] = seconds, epochs
    t0 = time.perf_counter()
    with torch.no_grad():
        base = net.nll(ce, xe)
    row["baseline_seconds_per_image"] = (time.perf_counter() - t0) / xe.shape[0]
    row["baseline_nll"], row["baseline_nll_se"] = mean_se(base)
    # the paired difference (same images): its s.e. is smaller than either's
    row["gain"], row["gain_se"] = mean_se(base - nll)

    if vae is not None:
        images = data["eval"]
        mask = mask.reshape(1, -1).expand(images.shape[0], -1)
        t0 = time.perf_counter()
        ll, _ = conditional_log_likelihood(
            vae.module_, images, mask, samples=args.samples, seed=args.seed
        )
        row["vae_guide_seconds_per_image"] = (time.perf_counter() - t0) / images.shape[0]
        row["vae_guide_nll"], row["vae_guide_nll_se"] = mean_se(-ll)
    return row


def markdown(record: dict) -> str:
    lines = [
        f"{record['data']}: {record['n_train']} training / {record['n_eval']} "
        f"{record['eval_split']} images; MLP {'-'.join(map(str, record['hidden']))}, "
        f"latent {record['latent_dim']}; -log p in nats per image over the missing pixels "
        f"(CVAE: K = {record['samples']} importance samples; negative ELBO with "
        f"{record['particles']} particles), mean +- s.e. over images.",
        "",
        "| observed quadrants | missing pixels | CVAE -log p(x_miss given x_obs) "
        "| CVAE -ELBO (Pyro's number) | NN baseline -log p | baseline - CVAE "
        "| CVAE eval ms/image | baseline eval ms/image |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    vae_rows = []
    for r in record["results"]:
        if "vae_guide_nll" in r:
            vae_rows.append(
                f"| {r['quadrants']} | {r['vae_guide_nll']:.2f} +- {r['vae_guide_nll_se']:.2f} "
                f"| {1e3 * r['vae_guide_seconds_per_image']:.2f} |"
            )
        lines.append(
            f"| {r['quadrants']} | {r['missing_pixels']} "
            f"| {r['cvae_nll']:.2f} +- {r['cvae_nll_se']:.2f} "
            f"| {r['cvae_neg_elbo']:.2f} +- {r['cvae_neg_elbo_se']:.2f} "
            f"| {r['baseline_nll']:.2f} +- {r['baseline_nll_se']:.2f} "
            f"| {r['gain']:.2f} +- {r['gain_se']:.2f} "
            f"| {1e3 * r['cvae_seconds_per_image']:.2f} "
            f"| {1e3 * r['baseline_seconds_per_image']:.3f} |"
        )
    if vae_rows:
        lines += [
            "",
            f"Unconditional VAE trained with mask rate {record['vae_mask_rate']} "
            f"({record['vae_epochs']} epochs), conditioned by its guide q(z | x_obs, mask): "
            f"-log p(x_miss given x_obs), self-normalized importance sampling, "
            f"K = {record['samples']}.",
            "",
            "| observed quadrants | VAE + guide -log p(x_miss given x_obs) | eval ms/image |",
            "|---:|---:|---:|",
            *vae_rows,
        ]
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", choices=("digits", "mnist"), default="digits")
    p.add_argument(
        "--data-root",
        default=str(Path(__file__).resolve().parents[1].parent / "shared/data/binarized_mnist"),
        help="folder of binarized_mnist_{train,valid}.amat (--data mnist)",
    )
    p.add_argument("--quadrants", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--train-rows", type=int, default=45000, help="MNIST training images")
    p.add_argument("--eval-rows", type=int, default=10000, help="evaluation images (at most)")
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    p.add_argument("--latent-dim", type=int, default=16)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--patience", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--samples", type=int, default=1000, help="K for -log p (default 1000)")
    p.add_argument("--particles", type=int, default=10, help="particles of the -ELBO")
    p.add_argument(
        "--vae-mask-rate",
        type=float,
        default=0.5,
        help="mask rate of the unconditional VAE with guide conditioning (0: skip it)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=None, help="folder for the JSON and markdown results")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.samples < 1 or args.particles < 1:
        raise SystemExit("--samples and --particles must be >= 1")
    data = load(args)
    record = {
        "benchmark": "cvae_completion",
        "data": data["name"],
        "eval_split": data["eval_split"],
        "n_train": int(data["train"].shape[0]),
        "n_val": int(data["val"].shape[0]),
        "n_eval": int(data["eval"].shape[0]),
        "hidden": list(args.hidden),
        "latent_dim": args.latent_dim,
        "epochs": args.epochs,
        "patience": args.patience,
        "batch_size": args.batch_size,
        "samples": args.samples,
        "particles": args.particles,
        "seed": args.seed,
        "pyro_reported_grey_mnist": PYRO_REPORTED,
        "machine": machine_info(),
        "results": [],
    }
    vae = None
    if args.vae_mask_rate > 0:
        vae, seconds = train_masked_vae(data, args)
        record.update(
            vae_mask_rate=args.vae_mask_rate, vae_epochs=vae.n_epochs_, vae_train_seconds=seconds
        )
    for q in args.quadrants:
        row = run_quadrants(data, q, args, vae)
        record["results"].append(row)
        print(
            f"{q} quadrant(s): CVAE -log p {row['cvae_nll']:.2f} +- {row['cvae_nll_se']:.2f}, "
            f"-ELBO {row['cvae_neg_elbo']:.2f}; baseline {row['baseline_nll']:.2f} "
            f"+- {row['baseline_nll_se']:.2f}",
            flush=True,
        )
    table = markdown(record)
    print(table)
    name = "cvae_completion_" + ("mnist" if args.data == "mnist" else "digits")
    write_outputs(args.out, name, record, table)
    return record


if __name__ == "__main__":
    main()
