"""Compare the autoencoder baselines (AE, DAE) with a VAE on the digits.

All three use the same encoder/decoder networks, the same Bernoulli likelihood, the
same latent size and the same trainer; only the Pyro program differs. The AE and DAE
have no latent random variable, so their objective is the reconstruction
log-likelihood alone and they have no ELBO.

PYROVAE_EXAMPLE_EPOCHS sets the number of training epochs (default 50).
"""

from __future__ import annotations

import math
import os

from pyrovae.api import AE, DAE, VAE
from pyrovae.data import load_data

EPOCHS = int(os.environ.get("PYROVAE_EXAMPLE_EPOCHS", "50"))


def main() -> None:
    data = load_data("digits")
    shared = {
        "latent_dim": 8,
        "hidden": (400,),
        "likelihood": "bernoulli",
        "epochs": EPOCHS,
        "seed": 0,
    }
    models = {
        "AE": AE(**shared),
        "DAE (mask 0.25)": DAE(noise=0.25, corruption="mask", **shared),
        "VAE": VAE(**shared),
    }
    print(f"{'model':<16} {'log p(x|z)':>11} {'MSE':>8} {'ELBO':>8}")
    for name, est in models.items():
        est.fit(data.train, X_val=data.val)
        ev = est.evaluate(data.test)
        recon = est.reconstruct(data.test)  # E[x|z] at the code / posterior mean
        mse = float(((recon - data.test) ** 2).mean())
        elbo = "-" if math.isnan(ev["elbo"]) else f"{ev['elbo']:.2f}"
        print(f"{name:<16} {ev['recon']:>11.2f} {mse:>8.4f} {elbo:>8}")
    print(
        "log p(x|z): test reconstruction log-likelihood per image (nats; for the VAE at a "
        "draw z ~ q(z|x)).\nMSE: squared error of E[x|z] per pixel. Only the VAE has an "
        "ELBO, a lower bound on log p(x)."
    )
    # Every model can generate: the VAE decodes prior draws, the autoencoders decode draws
    # from a Gaussian fitted to their training codes.
    for name, est in models.items():
        print(f"{name}: {tuple(est.sample(8).shape)} samples")


if __name__ == "__main__":
    main()
