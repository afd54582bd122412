"""Validation ELBO of every registered prior after the same short training budget.

Each unconditional prior in :data:`pyrovae.priors.PRIORS` trains the same VAE (MLP, Bernoulli
likelihood, diagonal Normal guide, Adam) for the same number of epochs, with
early stopping off, on binarized data; the table gives the validation ELBO
(nats per image, 10 particles, with its standard error) and the wall time.

Data: the built-in digits thresholded at 0.5 (default), or static binarized
MNIST with ``--mnist DIR`` (``binarized_mnist_train.amat`` for training and
``binarized_mnist_valid.amat`` for validation; never downloaded here).

    python benchmarks/bench_priors.py --out results/
    python benchmarks/bench_priors.py --mnist ../shared/data/binarized_mnist --epochs 5 \
        --out results/
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import load_binarized_mnist, machine_info, write_outputs  # noqa: E402

from pyrovae.api import VAE  # noqa: E402
from pyrovae.data import load_data  # noqa: E402
from pyrovae.priors import PRIORS  # noqa: E402


def load(args) -> tuple[torch.Tensor, torch.Tensor, str]:
    if args.mnist:
        root = Path(args.mnist)
        train = load_binarized_mnist(root / "binarized_mnist_train.amat", args.max_rows)
        val = load_binarized_mnist(root / "binarized_mnist_valid.amat", args.max_rows)
        return train, val, "static binarized MNIST (train / validation)"
    d = load_data("digits")
    return (d.train > 0.5).float(), (d.val > 0.5).float(), "digits thresholded at 0.5"


def run(args) -> dict:
    torch.set_num_threads(args.threads) if args.threads else None
    train, val, data_name = load(args)
    rows = []
    # a conditional prior p(z | c) needs conditions, which an unconditional VAE has none of
    unconditional = [n for n in PRIORS.names() if not PRIORS.get(n).conditional]
    for name in args.priors or unconditional:
        t0 = time.perf_counter()
        vae = VAE(
            prior=name,
            likelihood="bernoulli",
            latent_dim=args.latent_dim,
            hidden=tuple(args.hidden),
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.lr,
            patience=0,
            seed=args.seed,
        ).fit(train)
        seconds = time.perf_counter() - t0
        ev = vae.evaluate(val, particles=10)
        rows.append(
            {
                "prior": name,
                "val_elbo": ev["elbo"],
                "val_elbo_se": ev["elbo_se"],
                "val_recon": ev["recon"],
                "val_kl": ev["kl"],
                "seconds": seconds,
            }
        )
        print(
            f"{name:>10}: val ELBO {ev['elbo']:.2f} ± {ev['elbo_se']:.2f} nats ({seconds:.0f} s)",
            flush=True,
        )
    return {
        "data": data_name,
        "n_train": train.shape[0],
        "n_val": val.shape[0],
        "epochs": args.epochs,
        "latent_dim": args.latent_dim,
        "hidden": args.hidden,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "seed": args.seed,
        "machine": machine_info(args.threads),
        "results": rows,
    }


def markdown(result: dict) -> str:
    lines = [
        f"{result['data']}, {result['n_train']} training / {result['n_val']} validation images, "
        f"{result['epochs']} epochs, latent {result['latent_dim']}, hidden {result['hidden']}, "
        f"batch {result['batch_size']}:",
        "",
        "| prior | validation ELBO (nats) | ± s.e. | recon | KL | seconds |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["results"]:
        lines.append(
            f"| {r['prior']} | {r['val_elbo']:.2f} | {r['val_elbo_se']:.2f} | "
            f"{r['val_recon']:.2f} | {r['val_kl']:.2f} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mnist", metavar="DIR", help="folder with binarized MNIST .amat files")
    p.add_argument("--max-rows", type=int, help="read at most this many images per split")
    p.add_argument("--priors", nargs="*", help="priors to run (default: all registered)")
    p.add_argument("--epochs", type=int, default=50, help="epochs per prior (default: 50)")
    p.add_argument("--latent-dim", type=int, default=16, help="latent size (default: 16)")
    p.add_argument("--hidden", type=int, nargs="+", default=[400], help="hidden widths")
    p.add_argument("--batch-size", type=int, default=128, help="minibatch (default: 128)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    p.add_argument("--threads", type=int, help="torch.set_num_threads")
    p.add_argument("--out", metavar="DIR", help="write priors.json and priors.md here")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    result = run(args)
    table = markdown(result)
    print(table)
    write_outputs(args.out, "priors", result, table)
    return result


if __name__ == "__main__":
    main()
