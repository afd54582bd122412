"""Frequentist versus Bayesian autoencoders: AE, DAE, VAE and beta-VAE side by side.

Part 1 (command line, digits): ``pyrovae train`` five runs with the same networks
(AE, DAE, and VAEs with beta = 0.5, 1, 4) into ``comparison-study/digits/`` and
``pyrovae compare`` them: reconstruction, log p(x), rate and distortion, sample
quality, latent smoothness, prior filling, out-of-distribution AUROC.

Part 2 (Python API, shapes): the same five models on the procedural shapes
(``--data shapes``, known factors), compared with
:func:`pyrovae.analysis.comparison.compare_runs`, which adds the disentanglement
metrics MIG and the beta-VAE score; their trend across beta is printed at the end.

Usage::

    python examples/comparison_study.py [--epochs N] [--hidden H] [--samples K] [-n N]

Options (the defaults are the study's settings):

``--epochs``
    Training epochs of every model (early stopping may end a run sooner); default
    ``$PYROVAE_EXAMPLE_EPOCHS``, else 100.
``--hidden``
    Width of the one hidden layer of every encoder and decoder (default 400).
``--samples``
    Importance samples per data point for log p(x) and the out-of-distribution
    score, in both parts (default 500).
``-n``, ``--n``
    Held-out data points scored, in both parts (default 500; the test splits hold
    fewer, so by default every test point is scored).

See docs/comparison.md for what each metric means.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pyrovae.analysis.comparison import compare_runs
from pyrovae.api import AE, DAE, VAE
from pyrovae.cli import main as pyrovae
from pyrovae.data import load_data
from pyrovae.report.compare import format_tables, write_comparison

EPOCHS = int(os.environ.get("PYROVAE_EXAMPLE_EPOCHS", "100"))
HIDDEN = 400
SAMPLES = 500
N_SCORED = 500
BETAS = (0.5, 1.0, 4.0)
OUT = Path("comparison-study")


def digits_with_the_cli(args: argparse.Namespace) -> None:
    shared = ["--epochs", str(args.epochs), "--hidden", str(args.hidden)]
    shared += ["--latent-dim", "8", "--no-progress"]
    models = {
        "ae": ["--model", "ae"],
        "dae": ["--model", "dae", "--noise", "0.25"],
        **{f"vae-beta{b:g}": ["--model", "vae", "--beta", str(b)] for b in BETAS},
    }
    runs = []
    for name, options in models.items():
        run = OUT / "digits" / name
        with contextlib.redirect_stdout(io.StringIO()):  # keep the training summaries quiet
            status = pyrovae(["train", "-o", str(run), "--force", *shared, *options])
        if status:
            raise SystemExit(f"training {name} failed")
        runs.append(str(run))
    command = ["compare", *runs, "--samples", str(args.samples), "-n", str(args.n)]
    command += ["--output", str(OUT / "digits")]
    print(f"== digits: pyrovae {' '.join(command)}")
    if pyrovae(command):
        raise SystemExit("compare failed")


def shapes_with_the_api(args: argparse.Namespace) -> None:
    data = load_data("shapes")
    shared = {"latent_dim": 10, "hidden": (args.hidden,), "epochs": args.epochs, "seed": 0}
    models = [AE(**shared), DAE(noise=0.25, **shared)] + [VAE(beta=b, **shared) for b in BETAS]
    for est in models:
        est.fit(data.train, X_val=data.val)
    result = compare_runs(
        models,
        data,
        names=[m.family for m in models],
        n=args.n,
        samples=args.samples,
    )
    write_comparison(result, OUT / "shapes", models, data.test)
    print(f"\n== shapes (Python API; files in {OUT / 'shapes'})")
    print(format_tables(result), end="")
    print("\nDisentanglement across beta (posterior means; MIG in [0, 1], beta-VAE score")
    print("chance 0.25):")
    for row in result["rows"]:
        mig, score = row["mig"], row["beta_vae_score"]
        print(f"  {row['label']:<12} MIG {mig:.3f}   beta-VAE score {score:.3f}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--epochs",
        type=int,
        default=EPOCHS,
        help="training epochs of every model (default: $PYROVAE_EXAMPLE_EPOCHS, else 100)",
    )
    parser.add_argument(
        "--hidden",
        type=int,
        default=HIDDEN,
        help=f"hidden units of every network (default: {HIDDEN})",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=SAMPLES,
        metavar="K",
        help=f"importance samples per data point for log p(x) and OOD (default: {SAMPLES})",
    )
    parser.add_argument(
        "-n",
        "--n",
        type=int,
        default=N_SCORED,
        help=f"held-out data points scored (default: {N_SCORED})",
    )
    args = parser.parse_args(argv)
    for name in ("epochs", "hidden", "samples", "n"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    digits_with_the_cli(args)
    shapes_with_the_api(args)


if __name__ == "__main__":
    main(sys.argv[1:])
