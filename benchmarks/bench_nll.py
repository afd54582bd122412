"""Negative log-likelihood on static binarized MNIST under fixed CPU-time budgets.

For each configuration (VAE with a standard Normal prior, mixture-of-Gaussians
prior, VampPrior, IWAE-trained, IAF (flow) guide, hierarchical VAE, the VampPrior
with gated layers and KL warm-up as Tomczak & Welling (2018) train it, and the
autoencoder baselines) and each budget, one run is trained on the 50,000
training images until its budget is spent, then the validation split (10,000
images; the test split is not on this machine) is scored:

* VAEs: ``-log p(x)`` per image, importance-sampled with K = 5000 samples from
  the guide (:func:`pyrovae.analysis.log_likelihood`), mean and standard error;
  also the ELBO and its terms.
* AE / DAE: reconstruction error only, ``-log p(x | x_hat)`` (Bernoulli
  cross-entropy, nats per image) and the mean squared error per image.

The budget is counted on the training process's CPU clock: a budget of ``M``
minutes on ``C`` cores is ``60 * M * C`` CPU-seconds, so a run is not charged for
other work on the machine. Training runs single-threaded by default
(``--threads 1``): with several threads on a busy machine, OpenMP's spin-waiting
is charged as CPU time too, which would make the budget depend on the load.
One thread for ``60 * M * C`` CPU-seconds does the work of ``C`` threads for
``M`` minutes, slightly favourably (one thread wastes nothing on
synchronisation). Wall-clock time is recorded too.
2,000 training images are held out for early stopping (patience in epochs);
nothing is selected on the validation split that is reported.

Several processes may work through the same list at once (for example one
single-threaded process per core): each claims a run folder with a lock file
and skips those another live process holds.

Every run lives in its own folder under ``--runs`` (config, ``run.json`` with
the code version and machine, checkpoints) and is resumable: running the
script again continues unfinished runs where they stopped and skips finished
ones, so a long study can be spread over several sessions. ``result.json`` in
a run folder holds its scores. A larger budget starts from the finished
smaller-budget run of the same configuration (its checkpoint is copied and
training resumes, which is bit-exact, so this is the run a fresh start would
train; checkpoints from before pyrovae's resume was exact are not continued);
if early stopping ended the smaller run before its budget, the larger budget
trains the very same run and its scores are reported with ``same_run_as``.

    python benchmarks/bench_nll.py --mnist ../shared/data/binarized_mnist \
        --budgets 10 60 --runs runs/nll --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import load_binarized_mnist, machine_info, write_outputs  # noqa: E402

from pyrovae.analysis import log_likelihood  # noqa: E402
from pyrovae.api import ESTIMATORS, resume  # noqa: E402

#: Tomczak & Welling's (2018) hierarchical VAE with the VampPrior on the top layer.
_HVAE_VAMP = {
    "model": "hvae",
    "prior": "vamp",
    "top_from_x": True,
    "top_dim": 40,
    "layer_hidden": 300,
    "net": "gated",
    "beta_schedule": "linear",
    "beta_warmup": 100,
}
#: Tomczak & Welling's hierarchical VampPrior in full: 500 pseudo-inputs, the decoder
#: reading z1 and z2, two gated layers of 300 between the latent layers.
_HVAE_VAMP_FULL = {
    **_HVAE_VAMP,
    "prior_options": {"components": 500},
    "decoder_reads_top": True,
    "layer_depth": 2,
    "layer_gated": True,
}

#: The configurations: estimator family and its parameters (on top of COMMON).
CONFIGS: dict[str, dict] = {
    "vae": {"model": "vae"},
    "mog": {"model": "vae", "prior": "mog"},
    "vamp": {"model": "vae", "prior": "vamp"},
    "iwae": {"model": "vae", "objective": "iwae", "particles": 5},
    "iaf": {"model": "vae", "guide": "iaf"},
    "hvae": {"model": "hvae"},
    # Tomczak & Welling's (2018) recipe on the same widths: gated MLP layers and a
    # 100-epoch linear KL warm-up (early stopping waits for the warm-up to end).
    "vamp_gated": {
        "model": "vae",
        "prior": "vamp",
        "net": "gated",
        "beta_schedule": "linear",
        "beta_warmup": 100,
    },
    # their hierarchical VAE + VampPrior: q(z2|x) q(z1|x, z2), p(z2) the VampPrior,
    # 40 + 40 latents, 300-wide networks between the layers (Tomczak & Welling 2018)
    "hvae_vamp_gated": _HVAE_VAMP,
    # the same, with the learning rate halved after every 10 epochs without a better
    # held-out loss (ReduceLROnPlateau), so early stopping (50) sees five decays
    "hvae_vamp_decay": {**_HVAE_VAMP, "lr_decay_patience": 10},
    # and with Tomczak & Welling's networks between the layers: two gated layers
    "hvae_vamp_deep_decay": {
        **_HVAE_VAMP,
        "layer_depth": 2,
        "layer_gated": True,
        "lr_decay_patience": 10,
    },
    # Tomczak & Welling's recipe in full: 500 pseudo-inputs, the decoder reading z1 and
    # z2, two gated layers between the latent layers; plus the plateau decay above
    "hvae_vamp_full": {**_HVAE_VAMP_FULL, "lr_decay_patience": 10},
    # Tomczak & Welling's recipe without this study's plateau decay (a constant 5e-4)
    "hvae_vamp_full_nodecay": dict(_HVAE_VAMP_FULL),
    "ae": {"model": "ae"},
    "dae": {"model": "dae"},
}

#: Configurations for the long, resumable run towards 85 nats (``--budgets 600``); the
#: default ``--configs`` leaves them out.
LONG_RUN = ("hvae_vamp_decay", "hvae_vamp_deep_decay", "hvae_vamp_full", "hvae_vamp_full_nodecay")

#: Shared by every configuration (the same networks and optimiser for all).
COMMON: dict = {
    "likelihood": "bernoulli",
    "hidden": (300, 300),
    "latent_dim": 40,
    "batch_size": 100,
    "learning_rate": 5e-4,
    "patience": 50,
    "epochs": 100_000,  # the time budget ends training, or early stopping
}

#: Training images held out for early stopping (taken from the end of the train split).
STOP_ROWS = 2000


def load(args) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]:
    """(train, early-stopping, validation) images and a description."""
    if args.mnist:
        root = Path(args.mnist)
        train = load_binarized_mnist(root / "binarized_mnist_train.amat", args.max_rows)
        val = load_binarized_mnist(root / "binarized_mnist_valid.amat", args.max_rows)
        name = "static binarized MNIST (train / validation)"
    else:
        from pyrovae.data import load_data

        d = load_data("digits")
        train, val = (d.train > 0.5).float(), (d.val > 0.5).float()
        name = "digits thresholded at 0.5"
    stop = min(STOP_ROWS, train.shape[0] // 10)
    return train[:-stop], train[-stop:], val, name


def _params(config: str, args) -> dict:
    params = {**COMMON, **CONFIGS[config]}
    params.pop("model")
    if args.hidden:
        params["hidden"] = tuple(args.hidden)
    if args.latent_dim:
        params["latent_dim"] = args.latent_dim
    params["seed"] = args.seed
    params["budget_clock"] = "cpu"
    return params


#: Images per block of the log-likelihood evaluation (saved after each block).
EVAL_BLOCK = 500


def resumable_log_likelihood(module, x: torch.Tensor, samples: int, path: Path, seed: int):
    """Per-image log p(x) computed in blocks of :data:`EVAL_BLOCK` images, each block
    seeded on its own and appended to ``path`` (``.npy``, written atomically) as it
    finishes, so an evaluation cut short continues where it stopped with the same
    result as an uninterrupted one."""
    import numpy as np

    done = np.load(path) if path.exists() else np.zeros(0, dtype=np.float64)
    for start in range(len(done), x.shape[0], EVAL_BLOCK):
        if start % EVAL_BLOCK:
            raise ValueError(f"{path} holds {len(done)} values, not whole blocks")
        torch.manual_seed(seed + start // EVAL_BLOCK)
        ll = log_likelihood(module, x[start : start + EVAL_BLOCK], samples=samples)
        done = np.concatenate([done, ll.double().cpu().numpy()])
        tmp = path.with_name(path.name + ".tmp.npy")
        np.save(tmp, done)
        os.replace(tmp, path)
    return torch.from_numpy(done[: x.shape[0]])


def _score(est, val: torch.Tensor, args, folder: Path | None = None) -> dict:
    """Scores of a trained run on ``val``, computed with ``--eval-threads`` threads (the
    evaluation is not part of the training budget)."""
    threads = torch.get_num_threads()
    if args.eval_threads:
        torch.set_num_threads(args.eval_threads)
    try:
        return _score_with(est, val, args, folder)
    finally:
        torch.set_num_threads(threads)


def _score_with(est, val: torch.Tensor, args, folder: Path | None) -> dict:
    ev = est.evaluate(val)
    row = {"recon_nats": -ev["recon"], "recon_nats_se": ev["recon_se"]}
    with torch.no_grad():
        xhat = est.reconstruct(val)
    row["mse"] = float(((xhat - val) ** 2).flatten(1).sum(1).mean())
    if est.module_.has_latent_sites:
        t0 = time.perf_counter()
        if folder is None:
            ll = log_likelihood(est.module_, val, samples=args.samples)
        else:
            path = folder / f"loglik_val_K{args.samples}.npy"
            ll = resumable_log_likelihood(est.module_, val, args.samples, path, args.seed)
        row.update(
            nll=float(-ll.mean()),
            nll_se=float(ll.std() / math.sqrt(ll.numel())),
            elbo=ev["elbo"],
            kl=ev["kl"],
            eval_seconds=time.perf_counter() - t0,
        )
    return row


def _lock(folder: Path) -> bool:
    """Claim ``folder`` for this process (several benchmark processes may share the
    work, one configuration each); a lock whose process has died is taken over."""
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / "lock"
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            os.kill(int(lock.read_text() or 0), 0)
            return False  # its owner is alive
        except (ProcessLookupError, ValueError):
            lock.unlink(missing_ok=True)
            return _lock(folder)
        except PermissionError:
            return False
    with os.fdopen(fd, "w") as fh:
        fh.write(str(os.getpid()))
    return True


def run_one(config: str, minutes: float, data, args) -> dict | None:
    """Train (or continue) one configuration under one budget and score it (None if
    another process is working on it)."""
    folder = Path(args.runs) / f"{config}-{minutes:g}min"
    result_file = folder / "result.json"
    if result_file.exists():
        return json.loads(result_file.read_text())
    shorter = _shorter_run(config, minutes, args)
    if shorter is not None and _stopped_early(shorter[1]):
        # Early stopping ended the shorter run before its budget: a larger budget
        # trains the same run (same seed, same steps), so it has the same scores.
        return {
            **shorter[1],
            "budget_minutes": minutes,
            "budget_cpu_seconds": 60.0 * minutes * args.cores,
            "same_run_as": shorter[0].name,
        }
    if args.report_only:
        return None
    if not _lock(folder):
        logging.getLogger(__name__).info("%s is being run by another process", folder)
        return None
    try:
        if (
            shorter is not None
            and not (folder / "checkpoint.pt").exists()
            and _resumes_exactly(shorter[0])
        ):
            _seed_from(shorter[0], folder)
        return _train_and_score(config, minutes, data, args, folder)
    finally:
        (folder / "lock").unlink(missing_ok=True)


def _shorter_run(config: str, minutes: float, args) -> tuple[Path, dict] | None:
    """The finished run of ``config`` with the largest budget below ``minutes``
    (its folder and result), or None."""
    best = None
    for folder in Path(args.runs).glob(f"{config}-*min"):
        result_file = folder / "result.json"
        if not result_file.exists():
            continue
        result = json.loads(result_file.read_text())
        if result.get("config") != config or "same_run_as" in result:
            continue
        if result["budget_minutes"] < minutes and (
            best is None or result["budget_minutes"] > best[1]["budget_minutes"]
        ):
            best = (folder, result)
    return best


def _stopped_early(result: dict) -> bool:
    """Whether early stopping, not the budget, ended the run."""
    patience = COMMON["patience"]
    return (
        result["epochs"] - result["best_epoch"] >= patience
        and result["cpu_seconds_used"] < result["budget_cpu_seconds"]
    )


def _trainer_state(folder: Path) -> dict | None:
    """The training state in the run's checkpoint (the previous checkpoint if the
    latest is unreadable), or None if there is none."""
    from pyrovae.training import load_resumable

    try:
        ckpt, _ = load_resumable(folder)
    except Exception:  # noqa: BLE001 - no readable checkpoint
        return None
    return ckpt.get("trainer") or None


def _resumes_exactly(folder: Path) -> bool:
    """Whether the run's checkpoint continues exactly where training stopped (written
    by a pyrovae whose checkpoints keep the last weights and the position in an
    unfinished epoch); older checkpoints are not continued: the larger budget then
    trains afresh."""
    return bool((_trainer_state(folder) or {}).get("resume_exact"))


def _seed_from(shorter: Path, folder: Path) -> None:
    """Start ``folder`` from the checkpoint of a shorter-budget run of the same
    configuration: resuming is bit-exact, so continuing it to the larger budget trains
    the same run as starting afresh would, without repeating the first part. The
    shorter run's files are copied, not moved."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("checkpoint.pt", "checkpoint.prev.pt", "metrics.csv", "run.json"):
        if (shorter / name).exists():
            shutil.copy2(shorter / name, folder / name)
    logging.getLogger(__name__).info("%s continues %s", folder, shorter)


def _train_and_score(config: str, minutes: float, data, args, folder: Path) -> dict:
    train, stop, val, _ = data
    result_file = folder / "result.json"
    budget = 60.0 * minutes * args.cores
    t0 = time.perf_counter()
    state = _trainer_state(folder)
    if state is not None:
        if state.get("stopped_early") or float(state.get("time_used", 0.0)) >= budget:
            from pyrovae.api import load as load_run  # training is over: score it

            est = load_run(folder)
        else:
            est = resume(folder, train, stop, time_budget=budget)
    else:
        cls = ESTIMATORS.get(CONFIGS[config]["model"])
        est = cls(**_params(config, args), time_budget=budget)
        est.fit(train, X_val=stop, run_dir=folder)
    wall = time.perf_counter() - t0
    torch.manual_seed(args.seed)
    result = {
        "config": config,
        "budget_minutes": minutes,
        "budget_cpu_seconds": budget,
        "cpu_seconds_used": getattr(est, "time_used_", math.nan),
        "wall_seconds_this_session": wall,
        "epochs": est.n_epochs_,
        "best_epoch": est.best_epoch_,
        "samples": args.samples,
        "n_val": val.shape[0],
        **_score(est, val, args, folder),
    }
    result_file.write_text(json.dumps(result, indent=2) + "\n")
    return result


def run(args) -> dict:
    """Train and score every configuration under every budget on ``--threads`` torch
    threads; the caller's thread count is restored afterwards."""
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)


def _run(args) -> dict:
    data = load(args) if not args.report_only else _sizes(args)
    rows = []
    for minutes in args.budgets:
        for config in args.configs:
            row = run_one(config, minutes, data, args)
            if row is None:
                status = "not finished" if args.report_only else "in another process"
                print(f"{config} {minutes:g} min: {status}", flush=True)
                continue
            rows.append(row)
            print(_line(row), flush=True)
    return {
        "data": data[3],
        "n_train": data[0].shape[0],
        "n_early_stopping": data[1].shape[0],
        "n_val": data[2].shape[0],
        "cores": args.cores,
        "common": {k: list(v) if isinstance(v, tuple) else v for k, v in COMMON.items()},
        "configs": CONFIGS,
        "machine": machine_info(args.threads),
        "results": rows,
    }


def _sizes(args):
    """Stand-ins for the data when only tabulating: (train, stop, val) row counts."""
    n = (48_000, 2_000, 10_000) if args.mnist else (0, 0, 0)
    name = "static binarized MNIST (train / validation)" if args.mnist else "digits"
    return (*(torch.empty(k, 0) for k in n), name)


def _line(r: dict) -> str:
    score = (
        f"-log p(x) {r['nll']:.2f} ± {r['nll_se']:.2f}"
        if "nll" in r
        else f"reconstruction {r['recon_nats']:.2f} nats, MSE {r['mse']:.2f}"
    )
    return f"{r['config']:>5} {r['budget_minutes']:g} min: {score} ({r['epochs']} epochs)"


def markdown(result: dict) -> str:
    lines = [
        f"{result['data']}: {result['n_train']} training images ({result['n_early_stopping']} "
        f"more held out for early stopping), scored on {result['n_val']} validation images; "
        f"budgets in minutes of {result['cores']} cores (CPU time of the training process).",
        "",
        "| config | budget (min) | −log p(x) (nats) | ± s.e. | −ELBO | KL | recon (nats) "
        "| MSE | epochs | CPU s | K |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["results"]:
        nll = "– | – | – | –"
        if "nll" in r:
            nll = f"{r['nll']:.2f} | {r['nll_se']:.2f} | {-r['elbo']:.2f} | {r['kl']:.2f}"
        lines.append(
            f"| {r['config']} | {r['budget_minutes']:g} | {nll} | {r['recon_nats']:.2f} | "
            f"{r['mse']:.2f} | {r['epochs']}{' ‡' if 'same_run_as' in r else ''} | "
            f"{r['cpu_seconds_used']:.0f} | {r['samples'] if 'nll' in r else '–'} |"
        )
    if any("same_run_as" in r for r in result["results"]):
        lines += [
            "",
            "‡ early stopping ended this configuration's run before the smaller budget was "
            "spent, so the larger budget trains the same run: the row repeats its scores.",
        ]
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mnist", metavar="DIR", help="folder with binarized MNIST .amat files")
    p.add_argument("--max-rows", type=int, help="read at most this many images per split")
    p.add_argument(
        "--configs",
        nargs="+",
        default=[c for c in CONFIGS if c not in LONG_RUN],
        choices=list(CONFIGS),
        help=f"configurations (default: all but {', '.join(LONG_RUN)})",
    )
    p.add_argument(
        "--budgets", type=float, nargs="+", default=[10, 60], help="minutes (default: 10 60)"
    )
    p.add_argument("--cores", type=int, default=2, help="cores a budget minute buys (default 2)")
    p.add_argument("--samples", type=int, default=5000, help="importance samples K (5000)")
    p.add_argument("--hidden", type=int, nargs="+", help="hidden widths (default 300 300)")
    p.add_argument("--latent-dim", type=int, help="latent size (default 40)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument(
        "--eval-threads",
        type=int,
        help="torch threads for the K-sample evaluation, which the budget does not count "
        "(default: --threads); more threads only help on an otherwise idle machine",
    )
    p.add_argument("--runs", default="runs/nll", help="folder of the run folders")
    p.add_argument("--out", metavar="DIR", help="write nll.json and nll.md here")
    p.add_argument(
        "--report-only",
        action="store_true",
        help="tabulate the finished runs; train nothing",
    )
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    result = run(args)
    table = markdown(result)
    print(table)
    write_outputs(args.out, "nll", result, table)
    return result


if __name__ == "__main__":
    main()
