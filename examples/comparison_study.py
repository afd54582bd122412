"""Frequentist versus Bayesian autoencoders: AE, DAE, VAE and beta-VAE side by side.

Part 1 (command line, digits): ``pyrovae train`` five runs with the same networks
(AE, DAE, and VAEs with beta = 0.5, 1, 4) into ``comparison-study/digits/`` and
``pyrovae compare`` them: reconstruction, log p(x), rate and distortion, sample
quality, latent smoothness, prior filling, out-of-distribution AUROC.

Part 2 (Python API, shapes): the same five models on the procedural shapes
(``--data shapes``, known factors), compared with
:func:`pyrovae.analysis.comparison.compare_runs`, which adds the disentanglement
metrics MIG and the beta-VAE score; their trend across beta is printed at the end.

PYROVAE_EXAMPLE_EPOCHS sets the training epochs of every model (default 100; early
stopping may end a run sooner). See docs/comparison.md for what each metric means.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

from pyrovae.analysis.comparison import compare_runs
from pyrovae.api import AE, DAE, VAE
from pyrovae.cli import main as pyrovae
from pyrovae.data import load_data
from pyrovae.report.compare import format_tables, write_comparison

EPOCHS = int(os.environ.get("PYROVAE_EXAMPLE_EPOCHS", "100"))
BETAS = (0.5, 1.0, 4.0)
OUT = Path("comparison-study")


def digits_with_the_cli() -> None:
    shared = ["--epochs", str(EPOCHS), "--latent-dim", "8", "--hidden", "400", "--no-progress"]
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
    print(f"== digits: pyrovae compare {' '.join(runs)} --output {OUT / 'digits'}")
    if pyrovae(["compare", *runs, "--output", str(OUT / "digits")]):
        raise SystemExit("compare failed")


def shapes_with_the_api() -> None:
    data = load_data("shapes")
    shared = {"latent_dim": 10, "hidden": (400,), "epochs": EPOCHS, "seed": 0}
    models = [AE(**shared), DAE(noise=0.25, **shared)] + [VAE(beta=b, **shared) for b in BETAS]
    for est in models:
        est.fit(data.train, X_val=data.val)
    result = compare_runs(models, data, names=[m.family for m in models])
    write_comparison(result, OUT / "shapes", models, data.test)
    print(f"\n== shapes (Python API; files in {OUT / 'shapes'})")
    print(format_tables(result), end="")
    print("\nDisentanglement across beta (posterior means; MIG in [0, 1], beta-VAE score")
    print("chance 0.25):")
    for row in result["rows"]:
        mig, score = row["mig"], row["beta_vae_score"]
        print(f"  {row['label']:<12} MIG {mig:.3f}   beta-VAE score {score:.3f}")


if __name__ == "__main__":
    digits_with_the_cli()
    shapes_with_the_api()
