"""The lecture notes' VAE for Heston implied-volatility surfaces, done with pyrovae, then
calibrated the Bayesian way.

The notes (``shared/seeds``, issue 19) train a small VAE on 625 Heston surfaces of total
implied variance w = iv^2 tau, walk its latent space, and fit a new surface by Adam on z.
This script does the same with pyrovae, and then samples the posterior over z of a
partly observed surface with NUTS:

1. data: ``--data heston`` (the notes' grid, the cells present in every surface,
   standardized per cell);
2. the notes' model: encoder 32-64-128, decoder 128-64-32, LeakyReLU, latent 4, a
   Gaussian likelihood, beta = 1, Adam with learning rate 0.01 and weight decay 0.01
   (set on the trainer's optimizer: pyrovae's options have no weight decay), halved on
   a plateau of the validation loss; the training curves of both loss terms (the
   reconstruction term and the KL term, from the run's ``metrics.csv``);
3. a random walk in the latent space, shown as a strip of surfaces (and an animated GIF
   where matplotlib's PillowWriter is available);
4. the fit of a random held-out surface as the notes do it: Adam on z, squared error;
5. a Bayesian calibration of the same surface with 90 % of its cells hidden at random,
   through pyrovae's conditioning API: ``est.condition(x, mask, method="nuts")`` samples
   the posterior over z given the observed cells under the model itself (z ~ N(0, I),
   the frozen decoder, its Gaussian likelihood of scale 0.1 in standardized units) and
   returns the completed surface with 90 % posterior-predictive bands;
6. the same posterior with the noise level set to what the decoder actually achieves,
   its reconstruction RMSE on the validation surfaces (0.046 in the notes' setting, not
   the 0.1 the model was trained with): NUTS written with Pyro (:func:`nuts_over_z`,
   a dozen lines), obs ~ Normal(decoder_mean(z)[observed], noise). The model's own scale
   gives wider bands than the errors need; this one is calibrated to them.

Usage::

    python examples/heston_surfaces.py                 # the notes' setting (minutes)
    python examples/heston_surfaces.py --tiny          # a small grid, seconds
    python examples/heston_surfaces.py --epochs 300 --warmup 300 --draws 300 --out figs

PYROVAE_EXAMPLE_EPOCHS (the test suite's tiny budget) sets the epochs and implies
``--tiny``. Figures go to ``--out`` (default ``heston-figures``); the script prints a
JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.infer import MCMC, NUTS

from pyrovae.api import VAE
from pyrovae.data import load_data
from pyrovae.data.heston import heston_surfaces
from pyrovae.plotting import pyplot
from pyrovae.runs import read_metrics

#: A small grid for --tiny: 4 maturities x 13 strikes, 3^4 = 81 surfaces.
TINY = {"maturity_days": [6, 30, 91, 182], "strikes": 12, "levels": 3}


def parse_args(argv=None) -> argparse.Namespace:
    env_epochs = os.environ.get("PYROVAE_EXAMPLE_EPOCHS")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", default=env_epochs is not None)
    p.add_argument("--epochs", type=int, default=int(env_epochs or 300))
    p.add_argument("--warmup", type=int, default=None, help="NUTS warm-up steps")
    p.add_argument("--draws", type=int, default=None, help="NUTS draws")
    p.add_argument("--hidden-fraction", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="heston-figures")
    args = p.parse_args(argv)
    args.warmup = args.warmup if args.warmup is not None else (20 if args.tiny else 300)
    args.draws = args.draws if args.draws is not None else (20 if args.tiny else 300)
    return args


# -- the notes' model ------------------------------------------------------------------
def train_notes_vae(data, epochs: int, run_dir: Path, seed: int) -> VAE:
    """The notes' architecture and optimiser, through pyrovae's build-and-train seam (so
    that the optimizer's weight decay can be set)."""
    est = VAE(
        latent_dim=4,
        hidden=(32, 64, 128),  # data side first: encoder 32-64-128, decoder 128-64-32
        activation="leaky_relu",
        likelihood="gaussian",
        beta=1.0,
        learning_rate=0.01,
        lr_decay_patience=10,
        lr_decay_factor=0.5,
        patience=40,
        batch_size=32,
        epochs=epochs,
        seed=seed,
    )
    est.check_params()
    pyro.set_rng_seed(seed)
    est.build(data.data_shape, "gaussian")
    est.check_runnable(data.train)
    trainer = est.make_trainer(run_dir, {"data": "heston"})
    for group in trainer.optimizer.param_groups:
        group["weight_decay"] = 0.01  # Adam with L2 weight decay, as in the notes
    return est.fit_with(trainer, data.train, data.val)


def rows_to_iv(rows: torch.Tensor, scaler, tau_rows: torch.Tensor) -> torch.Tensor:
    """Model rows (standardized total variance) -> implied vols (w < 0 read as 0)."""
    w = scaler.inverse(rows)
    return torch.sqrt(torch.clamp(w, min=0.0) / tau_rows)


def decoder_mean(est: VAE):
    """The frozen decoder's mean E[x|z] as a differentiable function of z."""
    module = est.module_
    for p in module.parameters():
        p.requires_grad_(False)
    module.eval()
    return lambda z: module.decode(z).mean


# -- fitting a surface -------------------------------------------------------------------
def adam_fit(mean_fn, x: torch.Tensor, observed: torch.Tensor, latent: int, steps: int = 400):
    """The notes' fit: z minimising the squared error on the observed cells (Adam)."""
    z = torch.zeros(latent, requires_grad=True)
    opt = torch.optim.Adam([z], lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        loss = (mean_fn(z)[observed] - x[observed]).square().sum()
        loss.backward()
        opt.step()
    return z.detach()


def nuts_over_z(mean_fn, x_obs, observed, noise: float, latent: int, warmup, draws, seed):
    """NUTS over z ~ N(0, I) given obs ~ Normal(mean_fn(z)[observed], noise): the draws
    of z ``(draws, latent)``."""

    def model():
        z = pyro.sample("z", dist.Normal(torch.zeros(latent), 1.0).to_event(1))
        pyro.sample("obs", dist.Normal(mean_fn(z)[observed], noise).to_event(1), obs=x_obs)

    pyro.set_rng_seed(seed)
    mcmc = MCMC(NUTS(model), num_samples=draws, warmup_steps=warmup, disable_progbar=True)
    mcmc.run()
    return mcmc.get_samples()["z"]


def predictive_summary(draws, truth_iv, hidden, scaler, tau_rows):
    """Posterior-predictive draws of a standardized row ``(S, cells)`` in implied vol:
    the mean, the 90 % band (lower, upper), its coverage of the hidden cells and the
    mean's RMSE there in vol points."""
    iv_draws = rows_to_iv(draws, scaler, tau_rows)
    post_iv = iv_draws.mean(0)
    lo, hi = torch.quantile(iv_draws, torch.tensor([0.05, 0.95], dtype=iv_draws.dtype), dim=0)
    covered = float(((truth_iv >= lo) & (truth_iv <= hi))[hidden].float().mean())
    rmse = float(100 * (post_iv - truth_iv)[hidden].square().mean().sqrt())
    return post_iv, lo, hi, covered, rmse


# -- figures ---------------------------------------------------------------------------
def plot_curves(metrics, path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    epochs = [r["epoch"] for r in metrics]
    for ax, term, title in zip(axes, ("recon", "kl"), ("reconstruction", "KL"), strict=True):
        for split in ("train", "val"):
            ys = [r.get(f"{split}_{term}") for r in metrics]
            if term == "recon":  # the loss term: minus the expected log-likelihood
                ys = [-y if y is not None else None for y in ys]
            ax.plot(epochs, ys, label=split)
        ax.set_xlabel("epoch")
        ax.set_title(f"{title} term (nats per surface)")
        ax.set_yscale("symlog", linthresh=100.0)  # the reconstruction term changes sign
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def smiles(ax, k, iv_grid, title: str, every: int = 1) -> None:
    """Implied-vol smiles of one surface ``(T, K)``, one line per maturity."""
    cmap = pyplot().get_cmap("viridis")
    t = iv_grid.shape[0]
    for i in range(0, t, every):
        ax.plot(k, iv_grid[i], color=cmap(i / max(t - 1, 1)), lw=1)
    ax.set_title(title, fontsize=8)
    ax.set_xlabel("log-moneyness")


def plot_walk(k, walk_iv, path: Path, gif: Path) -> bool:
    """A strip of surfaces along the walk, and the GIF where PillowWriter can write it."""
    plt = pyplot()
    frames = np.linspace(0, len(walk_iv) - 1, 6).round().astype(int)
    fig, axes = plt.subplots(1, 6, figsize=(15, 2.8), sharey=True)
    for ax, f in zip(axes, frames, strict=True):
        smiles(ax, k, walk_iv[f], f"step {f}")
    axes[0].set_ylabel("implied vol")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    from matplotlib import animation

    if not animation.PillowWriter.isAvailable():
        return False
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    lo, hi = np.nanmin(walk_iv), np.nanmax(walk_iv)

    def draw(f):
        ax.clear()
        smiles(ax, k, walk_iv[f], f"latent random walk, step {f}")
        ax.set_ylim(lo, hi)

    anim = animation.FuncAnimation(fig, draw, frames=len(walk_iv))
    anim.save(gif, writer=animation.PillowWriter(fps=8))
    plt.close(fig)
    return True


def plot_calibration(k, truth, adam, post, band, obs_grid, maturities, path: Path) -> None:
    """A few maturities: the truth, the observed cells, the Adam fit, the posterior mean
    and its 90 % band."""
    plt = pyplot()
    rows = np.linspace(0, truth.shape[0] - 1, 4).round().astype(int)
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.2))
    for ax, i in zip(axes, rows, strict=True):
        ax.fill_between(k, band[0][i], band[1][i], color="C1", alpha=0.3, label="90 % band")
        ax.plot(k, truth[i], "k-", lw=1, label="truth")
        ax.plot(k, adam[i], "C0--", lw=1, label="Adam on z (all cells)")
        ax.plot(k, post[i], "C1-", lw=1, label="NUTS posterior mean")
        ax.plot(k, obs_grid[i], "k.", ms=4, label="observed")
        ax.set_title(f"maturity {maturities[i] * 365:.0f} days", fontsize=9)
        ax.set_xlabel("log-moneyness")
    axes[0].set_ylabel("implied vol")
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> None:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    options = dict(TINY) if args.tiny else {}
    data = load_data("heston", scale="standardize", data_options=options)
    surfaces = heston_surfaces(**options)
    keep = surfaces.cells()
    tau_rows = torch.from_numpy(np.broadcast_to(surfaces.maturities[:, None], keep.shape)[keep])
    print(f"heston: {data.train.shape[0]} train surfaces of {keep.sum()} cells", flush=True)

    # 2. the notes' model, and its two loss terms per epoch
    with tempfile.TemporaryDirectory() as tmp:
        est = train_notes_vae(data, args.epochs, Path(tmp), args.seed)
        metrics = read_metrics(Path(tmp))
    plot_curves(metrics, out / "heston_training.png")
    mean_fn = decoder_mean(est)
    scaler = data.scaler

    def to_grid(rows):
        return surfaces.to_grid(rows_to_iv(rows, scaler, tau_rows).numpy())

    # 3. a random walk in the latent space
    steps = torch.randn(40, 4) * 0.3
    walk = torch.cumsum(steps, 0)
    with torch.no_grad():
        walk_iv = to_grid(mean_fn(walk))
    k = surfaces.log_moneyness
    gif = plot_walk(k, walk_iv, out / "heston_walk.png", out / "heston_walk.gif")

    # noise level of the calibration: the decoder's reconstruction error on validation
    with torch.no_grad():
        recon = mean_fn(est.encode(data.val).mean)
    noise = float((recon - data.val).square().mean().sqrt())

    # 4. the notes' fit of a random held-out surface: Adam on z, every cell observed
    rng = np.random.default_rng(args.seed)
    j = int(rng.integers(data.test.shape[0]))
    x = data.test[j]
    truth_iv = rows_to_iv(x, scaler, tau_rows)
    everything = torch.ones_like(x, dtype=torch.bool)
    z_adam = adam_fit(mean_fn, x, everything, 4, steps=50 if args.tiny else 400)
    with torch.no_grad():
        adam_iv = rows_to_iv(mean_fn(z_adam), scaler, tau_rows)
    rmse_adam = float(100 * (adam_iv - truth_iv).square().mean().sqrt())

    # 5. the model conditioned on 10 % of the cells: NUTS over z through pyrovae's API
    observed = torch.from_numpy(rng.random(x.shape[0]) >= args.hidden_fraction)
    hidden = ~observed
    completion = est.condition(
        x[None],
        mask=observed[None],
        method="nuts",
        draws=args.draws,
        warmup=args.warmup,
        chains=1,
        levels=(0.9,),
        seed=args.seed,
    )
    post_iv, lo, hi, covered, rmse_post = predictive_summary(
        completion.x[:, 0], truth_iv, hidden, scaler, tau_rows
    )

    # 6. the same posterior with the noise level the decoder achieves (validation RMSE)
    zs = nuts_over_z(mean_fn, x[observed], observed, noise, 4, args.warmup, args.draws, args.seed)
    with torch.no_grad():
        draws = mean_fn(zs)
        draws = draws + noise * torch.randn_like(draws)  # posterior predictive
    _, _, _, covered_noise, rmse_noise = predictive_summary(
        draws, truth_iv, hidden, scaler, tau_rows
    )
    obs_iv = torch.where(observed, truth_iv, torch.full_like(truth_iv, float("nan")))
    plot_calibration(
        surfaces.log_moneyness,
        to_grid(x),
        surfaces.to_grid(adam_iv.numpy()),
        surfaces.to_grid(post_iv.numpy()),
        (surfaces.to_grid(lo.numpy()), surfaces.to_grid(hi.numpy())),
        surfaces.to_grid(obs_iv.numpy()),
        surfaces.maturities,
        out / "heston_calibration.png",
    )
    summary = {
        "grid": "tiny" if args.tiny else "notes",
        "epochs": est.n_epochs_,
        "final_val_recon": metrics[-1].get("val_recon"),
        "final_val_kl": metrics[-1].get("val_kl"),
        "noise_standardized": noise,
        "adam_rmse_vol_points_all_observed": rmse_adam,
        "observed_cells": int(observed.sum()),
        "condition_nuts_rmse_vol_points_hidden": rmse_post,
        "condition_nuts_band90_coverage_hidden": float(covered),
        "condition_nuts_diagnostics": {
            k: v for k, v in completion.diagnostics.items() if isinstance(v, (int, float, str))
        },
        "nuts_validation_noise_rmse_vol_points_hidden": rmse_noise,
        "nuts_validation_noise_band90_coverage_hidden": float(covered_noise),
        "figures": sorted(str(p) for p in out.glob("heston_*")),
        "gif": gif,
    }
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
