"""Fit a VAE on scikit-learn's 8x8 digits, report its test ELBO, save and reload it.

Run from anywhere:

    python examples/quickstart.py

PYROVAE_EXAMPLE_EPOCHS sets the number of training epochs (default 50).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from pyrovae.api import VAE
from pyrovae.data import load_data

EPOCHS = int(os.environ.get("PYROVAE_EXAMPLE_EPOCHS", "50"))


def main() -> None:
    data = load_data("digits")  # (N, 1, 8, 8) grey levels in [0, 1], split train/val/test
    print(f"digits: {tuple(data.train.shape)} train, {tuple(data.test.shape)} test")

    vae = VAE(latent_dim=8, likelihood="bernoulli", epochs=EPOCHS, seed=0)
    vae.fit(data.train, X_val=data.val)  # returns the fitted estimator itself
    print(f"trained {vae.n_epochs_} epochs (best by validation: epoch {vae.best_epoch_})")

    # Test-set ELBO (nats per image) and its two terms, with standard errors.
    ev = vae.evaluate(data.test, particles=10)
    print(
        f"test ELBO {ev['elbo']:.2f} ± {ev['elbo_se']:.2f} = "
        f"reconstruction {ev['recon']:.2f} - KL {ev['kl']:.2f}"
    )

    # The encoder returns the posterior q(z|x); the decoder returns p(x|z).
    q = vae.encode(data.test[:4])
    print("posterior mean of the first test image:", q.mean[0, :4].numpy().round(2), "...")
    print("posterior sd   of the first test image:", q.stddev[0, :4].numpy().round(2), "...")
    recon = vae.reconstruct(data.test[:4])
    print(f"mean squared reconstruction error: {float(((recon - data.test[:4]) ** 2).mean()):.4f}")
    samples = vae.sample(16)
    print(f"16 samples from the prior: shape {tuple(samples.shape)}")

    # Save and load: the reloaded model encodes identically.
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vae.pt"
        vae.save(path)
        again = VAE.load(path)
        same = torch.allclose(again.encode(data.test).mean, vae.encode(data.test).mean)
        print(f"saved to {path.name} ({path.stat().st_size // 1024} KiB); reload identical: {same}")
        if not same:
            raise SystemExit("save/load round trip changed the model")


if __name__ == "__main__":
    main()
