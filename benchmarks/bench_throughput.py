"""Training throughput of pyrovae's SVI step against a hand-written PyTorch VAE.

Both sides train the same model on the same minibatches with the same optimizer:

* MLP 784-400-50 VAE. Encoder ``Linear(784, 400) + ReLU``, then
  ``Linear(400, 100)`` split into ``loc`` and ``softplus(raw) + 1e-5`` (the
  posterior standard deviation); decoder ``Linear(50, 400) + ReLU +
  Linear(400, 784)`` giving Bernoulli logits.
* Loss: the negative single-sample ELBO averaged over the batch, with a
  reparameterized draw ``z = loc + scale * eps`` and the *Monte Carlo* KL term
  ``log q(z|x) - log p(z)`` evaluated at that draw, exactly as Pyro's
  ``Trace_ELBO`` computes it (not the analytic Gaussian KL).
* Adam with ``lr=1e-3``; the reference starts from a copy of pyrovae's initial
  weights. pyrovae uses its trainer's optimizer
  (:func:`pyrovae.training.make_adam`: the fused implementation where the device
  has one); the reference uses ``torch.optim.Adam(params, lr=1e-3)`` as an
  ordinary training script does (PyTorch's default implementation), or, with
  ``--reference-adam fused``, the fused one too, which isolates the rest of the
  step.
* The reference's Bernoulli term is ``binary_cross_entropy_with_logits``, as an
  ordinary script writes it; with ``--reference-bernoulli pyrovae`` it is pyrovae's own
  closed-form kernel (:class:`pyrovae.likelihoods.bernoulli.BernoulliLogProbSum`), so that
  the ratio measures only what pyrovae adds around the same arithmetic.

pyrovae runs the step its trainer takes, :func:`pyrovae.training.train_step` called
as the trainer calls it (:class:`pyrovae.objectives.TraceELBO` at beta = 1 on a
:class:`~pyrovae.data.Batch`, backward, the divergence check
:func:`pyrovae.training.step.step_is_finite`, and the optimizer step); the reference
is an ordinary PyTorch training step. The two are interleaved in one process:
each round times ``--steps`` steps of one and then of the other (alternating
which goes first), and the per-round throughput ratio pyrovae / reference is
summarised by its median over ``--rounds`` rounds.

Usage::

    python benchmarks/bench_throughput.py --batch-sizes 64,128,256,512,1024 --out results/

Data are seeded random binary vectors unless ``--data`` names a directory with
``binarized_mnist_train.amat``. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

_HERE = Path(__file__).resolve().parent
for _p in (str(_HERE), str(_HERE.parent)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from _common import (  # noqa: E402
    load_binarized_mnist,
    machine_info,
    parse_int_list,
    summarize,
    synthetic_binary,
)

from pyrovae.data import TensorBatches  # noqa: E402
from pyrovae.likelihoods.bernoulli import BernoulliLogProbSum  # noqa: E402
from pyrovae.models import ModuleSpec, build_module  # noqa: E402
from pyrovae.objectives import OBJECTIVES, TraceELBO  # noqa: E402
from pyrovae.training import make_adam, train_step  # noqa: E402

DATA_DIM = 784
HIDDEN = 400
LATENT_DIM = 50
MIN_SCALE = 1e-5
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class ReferenceVAE(nn.Module):
    """A plain PyTorch VAE with the same networks and loss as pyrovae's MLP VAE.

    Parameters
    ----------
    data_dim, hidden, latent_dim : int
        Layer sizes (784, 400, 50 in the benchmark).
    """

    def __init__(
        self,
        data_dim: int = DATA_DIM,
        hidden: int = HIDDEN,
        latent_dim: int = LATENT_DIM,
        bernoulli: str = "bce",
        particles: int = 1,
    ) -> None:
        super().__init__()
        self.bernoulli = bernoulli
        self.particles = int(particles)
        self.enc_hidden = nn.Linear(data_dim, hidden)
        self.enc_out = nn.Linear(hidden, 2 * latent_dim)
        self.dec_hidden = nn.Linear(latent_dim, hidden)
        self.dec_out = nn.Linear(hidden, data_dim)

    @classmethod
    def from_pyrovae(
        cls, module: nn.Module, bernoulli: str = "bce", particles: int = 1
    ) -> ReferenceVAE:
        """A reference VAE holding a copy of a pyrovae MLP VAE's current weights."""
        enc = [m for m in module.encoder.modules() if isinstance(m, nn.Linear)]
        dec = [m for m in module.decoder.modules() if isinstance(m, nn.Linear)]
        head = module.guide_head.linear
        if len(enc) != 1 or len(dec) != 2:
            raise ValueError("expected a one-hidden-layer MLP VAE")
        ref = cls(enc[0].in_features, enc[0].out_features, module.latent_dim, bernoulli, particles)
        pairs = [
            (ref.enc_hidden, enc[0]),
            (ref.enc_out, head),
            (ref.dec_hidden, dec[0]),
            (ref.dec_out, dec[1]),
        ]
        with torch.no_grad():
            for dst, src in pairs:
                dst.weight.copy_(src.weight)
                dst.bias.copy_(src.bias)
        return ref.to(next(module.parameters()).device)

    def forward(
        self, x: torch.Tensor, eps: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Negative ELBO summed over the batch, with per-datapoint recon and KL terms.

        Parameters
        ----------
        x : Tensor
            ``(B, data_dim)`` binary data.
        eps : Tensor, optional
            Standard normal noise ``(B, latent_dim)``; drawn with ``randn_like``
            if omitted (the same draw Pyro's ``Normal.rsample`` makes).

        Returns
        -------
        loss : Tensor
            ``sum_n [log q(z_n|x_n) - log p(z_n) - log p(x_n|z_n)]``.
        recon, kl : Tensor
            Detached ``(B,)``: log p(x_n|z_n) and log q(z_n|x_n) - log p(z_n).
        """
        h = F.relu(self.enc_hidden(x))
        loc, raw = self.enc_out(h).chunk(2, dim=-1)
        scale = F.softplus(raw) + MIN_SCALE
        k = self.particles
        if eps is None:
            eps = torch.randn((k, *loc.shape)) if k > 1 else torch.randn_like(loc)
        z = loc + eps * scale
        logits = self.dec_out(F.relu(self.dec_hidden(z)))
        if self.bernoulli == "pyrovae":
            recon = BernoulliLogProbSum.apply(logits, x)
        else:
            target = x.expand_as(logits)
            recon = -F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(-1)
        # Normal log-densities at the sampled z, as Trace_ELBO evaluates them.
        log_q = (-((z - loc) ** 2) / (2 * scale**2) - scale.log() - HALF_LOG_2PI).sum(-1)
        log_p = (-0.5 * z**2 - HALF_LOG_2PI).sum(-1)
        kl = log_q - log_p
        if k > 1:  # the importance-weighted bound (Burda et al. 2016), K draws per row
            bound = torch.logsumexp(recon - kl, 0) - math.log(k)
            return -bound.sum(), recon.mean(0).detach(), kl.mean(0).detach()
        return (kl - recon).sum(), recon.detach(), kl.detach()


def reference_step(model: ReferenceVAE, optimizer: torch.optim.Optimizer, x: torch.Tensor):
    """One ordinary PyTorch training step on the batch-averaged loss."""
    optimizer.zero_grad(set_to_none=True)
    loss, _, _ = model(x)
    (loss / x.shape[0]).backward()
    optimizer.step()
    return loss


def build_pair(
    seed: int = 0,
    device: str = "cpu",
    lr: float = 1e-3,
    reference_adam="default",
    reference_bernoulli="bce",
    particles: int = 1,
):
    """pyrovae's VAE and the reference with identical initial weights, and their optimizers.

    Returns
    -------
    module, reference, objective, pyrovae_optimizer, reference_optimizer
    """
    torch.manual_seed(seed)
    spec = ModuleSpec(
        data_shape=(DATA_DIM,),
        latent_dim=LATENT_DIM,
        hidden=(HIDDEN,),
        net="mlp",
        likelihood="bernoulli",
    )
    module = build_module("vae", spec).to(device)
    reference = ReferenceVAE.from_pyrovae(module, reference_bernoulli, particles)
    opt_p = make_adam(module.parameters(), lr=lr)
    fused = {"fused": True} if reference_adam == "fused" else {}
    opt_r = torch.optim.Adam(reference.parameters(), lr=lr, **fused)
    objective = TraceELBO() if particles == 1 else OBJECTIVES.get("iwae")(num_particles=particles)
    return module, reference, objective, opt_p, opt_r


def loss_check(module, reference: ReferenceVAE, objective, x: torch.Tensor, seed: int) -> dict:
    """Both losses on ``x`` from the same RNG state (so the same noise), without training."""
    torch.manual_seed(seed)
    ours = float(objective(module.model, module.guide, x).loss.detach())
    torch.manual_seed(seed)
    theirs = float(reference(x)[0].detach())
    return {
        "pyrovae_loss": ours,
        "reference_loss": theirs,
        "relative_difference": abs(ours - theirs) / max(abs(theirs), 1e-12),
    }


def _timer(device: str) -> Callable[[], float]:
    if device.startswith("cuda"):

        def now() -> float:
            torch.cuda.synchronize()
            return time.perf_counter()

        return now
    return time.perf_counter


def bench_batch_size(
    data: torch.Tensor,
    batch_size: int,
    rounds: int,
    steps: int,
    warmup: int,
    seed: int = 0,
    device: str = "cpu",
    max_batches: int = 8,
    reference_adam: str = "default",
    reference_bernoulli: str = "bce",
    particles: int = 1,
) -> dict:
    """Interleaved throughput of pyrovae and the reference at one batch size.

    Parameters
    ----------
    data : Tensor
        ``(n, 784)`` binary data; the first ``max_batches`` full batches are used,
        the same ones, in the same order, by both sides.
    batch_size, rounds, steps, warmup : int
        Batch size, timed rounds, steps per side per round, untimed steps per side.
    seed : int
        Seed of the initial weights.
    device : str
        Torch device.
    max_batches : int
        Size of the pool of minibatches cycled through.
    reference_adam : {"default", "fused"}
        The reference's Adam implementation.
    reference_bernoulli : {"bce", "pyrovae"}
        The reference's Bernoulli term (see the module docstring).

    Returns
    -------
    dict
        Per-round samples/s of both sides, per-round ratios and their summaries.
    """
    n_batches = max(1, min(max_batches, data.shape[0] // batch_size))
    if data.shape[0] < batch_size:
        raise ValueError(f"need at least {batch_size} rows of data; have {data.shape[0]}")
    pool = data[: n_batches * batch_size].contiguous().to(device)
    # the minibatches the trainer's batch iterator makes (unshuffled: the same ones,
    # in the same order, for both sides)
    batches = list(TensorBatches(pool, batch_size))
    module, reference, objective, opt_p, opt_r = build_pair(
        seed,
        device,
        reference_adam=reference_adam,
        reference_bernoulli=reference_bernoulli,
        particles=particles,
    )
    check = loss_check(module, reference, objective, batches[0].x, seed + 1)

    params = [p for p in module.parameters() if p.requires_grad]
    # the same model through Pyro's traces on every step (no direct route), trained from
    # the same weights by its own optimizer
    traced = copy.deepcopy(module)
    traced_objective = TraceELBO(direct=False) if particles == 1 else objective
    opt_t = make_adam(traced.parameters(), lr=opt_p.defaults["lr"])
    traced_params = [p for p in traced.parameters() if p.requires_grad]

    def run_pyrovae(n: int) -> None:
        for i in range(n):  # as Trainer._step calls it in a single process
            batch = batches[i % n_batches]
            train_step(module, objective, opt_p, batch, 1.0, divisor=len(batch), params=params)

    def run_traces(n: int) -> None:
        for i in range(n):
            batch = batches[i % n_batches]
            train_step(
                traced, traced_objective, opt_t, batch, 1.0, divisor=len(batch),
                params=traced_params,
            )  # fmt: skip

    def run_reference(n: int) -> None:
        for i in range(n):
            reference_step(reference, opt_r, batches[i % n_batches].x)

    now = _timer(device)
    run_pyrovae(warmup)
    run_traces(warmup)
    run_reference(warmup)
    sides = {"pyrovae": run_pyrovae, "traces": run_traces, "reference": run_reference}
    rates: dict[str, list[float]] = {name: [] for name in sides}
    for r in range(rounds):
        order = list(sides)[r % 3 :] + list(sides)[: r % 3]  # each side leads in turn
        for name in order:
            t0 = now()
            sides[name](steps)
            rates[name].append(steps * batch_size / (now() - t0))
    ratios = [p / q for p, q in zip(rates["pyrovae"], rates["reference"], strict=True)]
    traced = [p / q for p, q in zip(rates["traces"], rates["reference"], strict=True)]
    return {
        "batch_size": batch_size,
        "pyrovae_samples_per_s": summarize(rates["pyrovae"]),
        "traces_samples_per_s": summarize(rates["traces"]),
        "reference_samples_per_s": summarize(rates["reference"]),
        "ratio": summarize(ratios),
        "traces_ratio": summarize(traced),
        "route": (
            objective.route(module.model, module.guide, batches[0])
            if isinstance(objective, TraceELBO)
            else "traces"
        ),
        "rounds": {
            "pyrovae_samples_per_s": rates["pyrovae"],
            "traces_samples_per_s": rates["traces"],
            "reference_samples_per_s": rates["reference"],
            "ratio": ratios,
            "traces_ratio": traced,
        },
        "loss_check": check,
    }


def markdown_table(results: Sequence[dict]) -> str:
    """The results as a Markdown table (one row per batch size)."""
    lines = [
        "| batch | pyrovae samples/s | reference samples/s "
        "| median ratio | min ratio | max ratio | traces only: median ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['batch_size']} | {r['pyrovae_samples_per_s']['median']:,.0f} "
            f"| {r['reference_samples_per_s']['median']:,.0f} "
            f"| {r['ratio']['median']:.3f} | {r['ratio']['min']:.3f} | {r['ratio']['max']:.3f} "
            f"| {r['traces_ratio']['median']:.3f} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-sizes", default="128", help="comma-separated (default: 128)")
    p.add_argument("--rounds", type=int, default=7, help="timed rounds (default: 7)")
    p.add_argument("--steps", type=int, default=50, help="steps per side per round (default: 50)")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps per side (default: 10)")
    p.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)"
    )
    p.add_argument(
        "--data",
        default=None,
        help="directory with binarized_mnist_train.amat (default: synthetic random binary data)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of data and weights (default: 0)")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.add_argument(
        "--reference-adam",
        choices=("default", "fused"),
        default="default",
        help="the reference's Adam implementation (default: PyTorch's default)",
    )
    p.add_argument(
        "--reference-bernoulli",
        choices=("bce", "pyrovae"),
        default="bce",
        help="the reference's Bernoulli term: binary_cross_entropy_with_logits (default) or "
        "pyrovae's closed-form kernel",
    )
    p.add_argument(
        "--particles",
        type=int,
        default=1,
        help="1: the ELBO (TraceELBO); K > 1: the IWAE bound with K samples on both sides",
    )
    p.add_argument("--out", default=None, help="write throughput.json and throughput.md here")
    args = p.parse_args(argv)
    args.batch_sizes = parse_int_list(args.batch_sizes)
    if args.particles < 1:
        p.error("--particles must be >= 1")
    for name in ("rounds", "steps"):
        if getattr(args, name) <= 0:
            p.error(f"--{name} must be positive")
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the benchmark; print the table; write the record if ``--out`` is given.

    Returns
    -------
    dict
        The record written to ``throughput.json``.
    """
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    rows_needed = 8 * max(args.batch_sizes)
    if args.data is None:
        data = synthetic_binary(rows_needed, DATA_DIM, seed=args.seed)
        data_desc = f"synthetic: {rows_needed} seeded Bernoulli(0.5) vectors of length 784"
    else:
        data = load_binarized_mnist(args.data, max_rows=rows_needed)
        data_desc = f"binarized MNIST: first {data.shape[0]} training images from {args.data}"
    results = []
    for b in args.batch_sizes:
        res = bench_batch_size(
            data,
            b,
            args.rounds,
            args.steps,
            args.warmup,
            seed=args.seed,
            device=args.device,
            reference_adam=args.reference_adam,
            reference_bernoulli=args.reference_bernoulli,
            particles=args.particles,
        )
        results.append(res)
        print(
            f"batch {b}: pyrovae {res['pyrovae_samples_per_s']['median']:,.0f} samples/s, "
            f"reference {res['reference_samples_per_s']['median']:,.0f} samples/s, "
            f"median ratio {res['ratio']['median']:.3f} ({res['route']} route; through "
            f"the traces {res['traces_ratio']['median']:.3f})",
            flush=True,
        )
    probe = torch.nn.Parameter(torch.zeros(1, device=args.device))
    opt_fused = bool(make_adam([probe], lr=1e-3).defaults.get("fused"))
    record = {
        "benchmark": "training throughput: pyrovae trainer step (TraceELBO, divergence "
        "check) vs hand-written PyTorch",
        "model": "MLP VAE 784-400-50, Bernoulli likelihood, diagonal Normal guide, N(0, I) prior",
        "loss": "negative single-sample ELBO (reparameterized, Monte Carlo KL), batch mean",
        "optimizer": "Adam(lr=1e-3): pyrovae make_adam (fused="
        f"{opt_fused}), reference torch.optim.Adam ({args.reference_adam} implementation)",
        "data": data_desc,
        "config": {
            "batch_sizes": args.batch_sizes,
            "rounds": args.rounds,
            "steps": args.steps,
            "warmup": args.warmup,
            "seed": args.seed,
            "device": args.device,
            "reference_adam": args.reference_adam,
            "reference_bernoulli": args.reference_bernoulli,
            "particles": args.particles,
        },
        "machine": machine_info(torch.get_num_threads()),
        "results": results,
    }
    table = markdown_table(results)
    print()
    print(table)
    if args.out is not None:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "throughput.json").write_text(json.dumps(record, indent=2) + "\n")
        m = record["machine"]
        header = (
            f"Training throughput, {record['model']}; {args.rounds} rounds x {args.steps} steps; "
            f"{m['cpu_count']} CPUs, {m['torch_threads']} torch threads, "
            f"torch {m['torch']}, pyro {m['pyro']}; data: {data_desc}; "
            f"optimizer: {record['optimizer']}.\n\n"
        )
        (out / "throughput.md").write_text(header + table + "\n")
    return record


if __name__ == "__main__":
    main()
