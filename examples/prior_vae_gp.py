"""PriorVAE: a VAE trained on Gaussian-process draws as the prior of a user's Pyro model.

Semenova et al. (2022, "PriorVAE", J. R. Soc. Interface 19: 20220094) replace an expensive
prior over functions by a trained decoder: f = E[x | decoder(z)], z ~ N(0, I), so that MCMC
in the downstream model runs over the low-dimensional z instead of the function's values.

1. Draw functions from a zero-mean GP with an RBF kernel (unit variance) on a grid of
   100 points on [0, 1], each with its own lengthscale drawn uniformly from a range.
2. Train a VAE (Gaussian likelihood, latent dimension 10) on the draws.
3. Hold out one function, observe it at 10 grid points with Gaussian noise, and infer it
   with NUTS over z in a user-written Pyro model::

       prior = pyrovae.prior_module(vae, "gp")

       def model(idx, y=None):
           f = prior()                                   # z at "gp_z", f at "gp_f"
           pyro.sample("y", dist.Normal(f[idx], noise).to_event(1), obs=y)

4. Compare with the exact GP posterior at the function's true lengthscale (the
   closed-form conditional Gaussian): the RMSE between the two posterior means, in units
   of the prior sd (1), and whether the 90 % bands cover the true function.

Run: ``python examples/prior_vae_gp.py [--train 20000 --epochs 150 ...]`` (``--help``);
PYROVAE_EXAMPLE_EPOCHS overrides ``--epochs``. ``benchmarks/bench_priorvae.py`` repeats
step 3 on 100 held-out functions and times NUTS over z against NUTS over the GP's values.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import MCMC, NUTS

import pyrovae

GRID = 100
#: Added to the kernel's diagonal so that its Cholesky factor exists in float32.
JITTER = 1e-5


def grid(n: int = GRID) -> torch.Tensor:
    """``n`` equally spaced points on [0, 1]."""
    return torch.linspace(0.0, 1.0, n)


def rbf(t: torch.Tensor, lengthscale) -> torch.Tensor:
    """The RBF kernel matrix exp(-(t_i - t_j)^2 / (2 l^2)) (unit variance); a batch of
    lengthscales ``(n,)`` gives ``(n, T, T)``."""
    ls = torch.as_tensor(lengthscale, dtype=t.dtype).reshape(-1, 1, 1)
    k = torch.exp(-0.5 * (t[:, None] - t[None, :]) ** 2 / ls**2)
    return k if torch.as_tensor(lengthscale).dim() else k[0]


def draw_gp(n: int, t: torch.Tensor, ls_range, generator: torch.Generator):
    """``n`` GP draws on ``t``, each with a lengthscale uniform on ``ls_range``; returns
    the draws ``(n, T)`` and their lengthscales ``(n,)``."""
    lo, hi = ls_range
    ls = lo + (hi - lo) * torch.rand(n, generator=generator)
    chol = torch.linalg.cholesky(rbf(t, ls) + JITTER * torch.eye(t.numel()))
    eps = torch.randn(n, t.numel(), 1, generator=generator)
    return (chol @ eps).squeeze(-1), ls


def exact_posterior(t, lengthscale, idx, y, noise):
    """The GP posterior of f on ``t`` given y = f[idx] + N(0, noise^2): mean ``(T,)`` and
    covariance ``(T, T)`` (Rasmussen & Williams 2006, eq. 2.23-2.24), in float64."""
    t = t.double()
    k = rbf(t, float(lengthscale)) + JITTER * torch.eye(t.numel(), dtype=t.dtype)
    k_oo = k[idx][:, idx] + noise**2 * torch.eye(len(idx), dtype=t.dtype)
    k_to = k[:, idx]
    chol = torch.linalg.cholesky(k_oo)
    a = torch.cholesky_solve(k_to.T, chol)  # K_oo^{-1} K_ot
    mean = a.T @ y.double()
    cov = k - k_to @ a
    return mean, cov


def train_prior(args) -> pyrovae.VAE:
    g = torch.Generator().manual_seed(args.seed)
    t = grid()
    x, _ = draw_gp(args.train, t, args.ls_range, g)
    x_val, _ = draw_gp(max(100, args.train // 10), t, args.ls_range, g)
    vae = pyrovae.VAE(
        latent_dim=args.latent_dim,
        hidden=tuple(args.hidden),
        activation="tanh",
        likelihood="gaussian",
        likelihood_options={"scale": args.decoder_scale},
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        patience=0,
        seed=args.seed,
    )
    t0 = time.perf_counter()
    vae.fit(x, X_val=x_val)
    print(
        f"trained the VAE on {args.train} GP draws in {time.perf_counter() - t0:.0f} s "
        f"({vae.n_epochs_} epochs)"
    )
    return vae


def make_model(prior, noise: float):
    """The user's model: f from the decoder prior, y observed at grid indices ``idx``."""

    def model(idx, y=None):
        f = prior()
        pyro.sample("y", dist.Normal(f[idx], noise).to_event(1), obs=y)

    return model


def nuts_over_z(prior, idx, y, noise, warmup, samples, seed, jit=True, full_mass=True):
    """NUTS draws of f (``(samples, T)``) under the decoder prior, the wall time and the
    MCMC object. A dense mass matrix (cheap over 10 dimensions) adapts to the correlations
    that the decoder induces between the coordinates of z."""
    pyro.set_rng_seed(seed)
    kernel = NUTS(
        make_model(prior, noise), jit_compile=jit, ignore_jit_warnings=True, full_mass=full_mass
    )
    mcmc = MCMC(kernel, num_samples=samples, warmup_steps=warmup, disable_progbar=True)
    t0 = time.perf_counter()
    mcmc.run(idx, y)
    seconds = time.perf_counter() - t0
    z = mcmc.get_samples()[prior.latent_site]
    with torch.no_grad():
        f = prior.decode(z)
    return f, seconds, mcmc


def compare(f_draws, f_true, mean_gp, cov_gp, level=0.9):
    """RMSE of the posterior means (prior sd units: the GP has unit variance), the
    coverage of the true function by both central bands, and their mean widths."""
    a = (1 - level) / 2
    lo, hi = torch.quantile(f_draws, torch.tensor([a, 1 - a]), dim=0)
    sd_gp = cov_gp.diagonal().clamp_min(0).sqrt()
    zq = dist.Normal(0.0, 1.0).icdf(torch.tensor(1 - a)).double()
    lo_gp, hi_gp = mean_gp - zq * sd_gp, mean_gp + zq * sd_gp
    f_true = f_true.double()
    return {
        "rmse_mean": float((f_draws.mean(0).double() - mean_gp).pow(2).mean().sqrt()),
        "coverage": float(((f_true >= lo) & (f_true <= hi)).double().mean()),
        "coverage_gp": float(((f_true >= lo_gp) & (f_true <= hi_gp)).double().mean()),
        "band_width": float((hi - lo).mean()),
        "band_width_gp": float((hi_gp - lo_gp).mean()),
    }


def observe(f_true, n_obs, noise, generator):
    """``n_obs`` distinct grid indices (sorted) and noisy observations of f there."""
    idx = torch.randperm(f_true.numel(), generator=generator)[:n_obs].sort().values
    y = f_true[idx] + noise * torch.randn(n_obs, generator=generator)
    return idx, y


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", type=int, default=20000, help="GP draws to train on")
    p.add_argument("--epochs", type=int, default=150)
    p.add_argument("--latent-dim", type=int, default=10)
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--decoder-scale", type=float, default=0.05, help="Gaussian likelihood sd")
    p.add_argument("--ls-range", type=float, nargs=2, default=[0.1, 0.3], metavar=("LO", "HI"))
    p.add_argument("--obs", type=int, default=10, help="observed grid points")
    p.add_argument("--noise", type=float, default=0.1, help="observation noise sd")
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv=None) -> None:
    args = parser().parse_args(argv)
    if "PYROVAE_EXAMPLE_EPOCHS" in os.environ:
        args.epochs = int(os.environ["PYROVAE_EXAMPLE_EPOCHS"])
    vae = train_prior(args)
    prior = pyrovae.prior_module(vae, "gp")

    # one held-out function, observed at a few points
    g = torch.Generator().manual_seed(args.seed + 12345)
    t = grid()
    f_true, ls = draw_gp(1, t, args.ls_range, g)
    f_true, ls = f_true[0], float(ls[0])
    idx, y = observe(f_true, args.obs, args.noise, g)

    f_draws, seconds, mcmc = nuts_over_z(
        prior, idx, y, args.noise, args.warmup, args.samples, args.seed
    )
    div = sum(len(v) for v in mcmc.diagnostics().get("divergences", {}).values())
    mean_gp, cov_gp = exact_posterior(t, ls, idx, y, args.noise)
    res = compare(f_draws, f_true, mean_gp, cov_gp)
    print(
        f"held-out function: lengthscale {ls:.3f}, {args.obs} observations with noise "
        f"sd {args.noise}"
    )
    print(
        f"NUTS over z ({args.latent_dim} dims): {args.samples} draws in {seconds:.1f} s, "
        f"{div} divergences"
    )
    print(
        f"posterior mean vs the exact GP's: RMSE {res['rmse_mean']:.3f} prior sd; "
        f"90 % band covers the true function at {res['coverage']:.0%} of the grid "
        f"(exact GP: {res['coverage_gp']:.0%}); mean band width {res['band_width']:.2f} "
        f"(exact GP: {res['band_width_gp']:.2f})"
    )
    if not all(math.isfinite(v) for v in res.values()):
        raise SystemExit("the comparison is not finite")
    assert len(pyro.get_param_store()) == 0  # the decoder prior registers nothing


if __name__ == "__main__":
    main()
