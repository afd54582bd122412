"""A trained linear VAE against exact probabilistic PCA.

With linear bodies, p(z) = N(0, I) and a Gaussian likelihood of fixed scale s, the
model p(x) = N(b, W W^T + s^2 I) and its posterior p(z|x) = N(S W^T (x - b)/s^2, S),
S = (I + W^T W / s^2)^{-1}, are closed-form for the *learned* W and b. Training the
amortized guide must bring it to that posterior, and importance sampling must recover
log p(x). Trained with the analytic-KL objective (lower-variance gradients).
Tolerances are stated below.
"""

from __future__ import annotations

import torch

from pyrovae.api import VAE

D, L, SIGMA = 6, 2, 0.3


def test_trained_guide_approaches_exact_posterior():
    g = torch.Generator().manual_seed(0)
    w_true = torch.randn(D, L, generator=g)
    x = torch.randn(2000, L, generator=g) @ w_true.T + SIGMA * torch.randn(2000, D, generator=g)
    vae = VAE(
        net="linear",
        latent_dim=L,
        likelihood="gaussian",
        likelihood_options={"scale": SIGMA},
        epochs=300,
        batch_size=200,
        learning_rate=3e-3,
        patience=0,
        seed=0,
        objective="meanfield",
    ).fit(x)
    dec = vae.module_.decoder.linear
    w, b = dec.weight.detach(), dec.bias.detach()
    cov = torch.linalg.inv(torch.eye(L) + w.T @ w / SIGMA**2)
    xs = x[:200]
    exact_mean = (xs - b) @ w @ cov.T / SIGMA**2
    q = vae.encode(xs)
    sd = cov.diagonal().sqrt()
    # guide means within 0.25 posterior sd (0.1 on average) of the exact means; a
    # diagonal guide's best sds are 1 / sqrt(diag of the posterior precision): within 10 %
    err = (q.mean - exact_mean).abs() / sd
    assert err.max() < 0.25 and err.mean() < 0.1
    best_sd = 1 / torch.linalg.inv(cov).diagonal().sqrt()
    assert ((q.stddev / best_sd) - 1).abs().max() < 0.1
    # importance-sampled log p(x) of the learned model: within 0.02 nats on average
    marginal = torch.distributions.MultivariateNormal(b, w @ w.T + SIGMA**2 * torch.eye(D))
    est = vae.log_likelihood(xs, samples=500)
    assert (est - marginal.log_prob(xs)).abs().mean() < 0.02
