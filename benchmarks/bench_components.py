"""Training throughput of each registered component against the default configuration.

The default is pyrovae's VAE with the MLP 784-400-50, standard Normal prior,
diagonal Normal guide, Bernoulli likelihood and Trace_ELBO. Each case swaps
one component (found through its registry, so new components are measured
as soon as they are registered) and is timed interleaved with the default in
the same process: per round, ``--steps`` SVI steps of each, alternating which
goes first; the table reports the median over rounds of the ratio
(component samples/s) / (default samples/s). Data: synthetic binary 784-dim
rows (0/1 are in the support of every likelihood except ``beta``, for which
they are moved to 0.01/0.99). Objectives run with ``--particles`` samples.

    python benchmarks/bench_components.py --out results/
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pyro
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_info, summarize, synthetic_binary, write_outputs  # noqa: E402

from pyrovae.data import Batch  # noqa: E402
from pyrovae.guides import GUIDES  # noqa: E402
from pyrovae.likelihoods import LIKELIHOODS  # noqa: E402
from pyrovae.models import MODELS, ModuleSpec, build_module  # noqa: E402
from pyrovae.objectives import OBJECTIVES  # noqa: E402
from pyrovae.priors import PRIORS  # noqa: E402
from pyrovae.training import train_step  # noqa: E402

DEFAULT = {
    "family": "vae",
    "prior": "normal",
    "guide": "normal",
    "likelihood": "bernoulli",
    "objective": "trace",
}


#: Model options a family needs (its label space for the M2 model).
FAMILY_OPTIONS = {"m2": {"n_classes": 10}}


def cases(particles: int) -> list[dict]:
    """One case per registered component (the default's own entries excluded)."""
    out = []
    for kind, registry in (
        ("prior", PRIORS),
        ("guide", GUIDES),
        ("likelihood", LIKELIHOODS),
        ("objective", OBJECTIVES),
    ):
        out += [{kind: n} for n in registry.names() if n != DEFAULT[kind]]
    out += [{"family": n} for n in MODELS.names() if n != "vae"]
    out += [{"objective": "trace", "particles": particles}]
    return out


def data_for(likelihood: str, x: torch.Tensor) -> torch.Tensor:
    kind = LIKELIHOODS.get(likelihood).support_kind
    return x.clamp(0.01, 0.99) if kind == "open-unit" else x


def build(case: dict, latent: int, hidden: int, particles: int, lr: float):
    cfg = {**DEFAULT, **case}
    if PRIORS.get(cfg["prior"]).conditional:  # p(z | c) needs a conditional family
        cfg["family"] = "cvae"
    spec = ModuleSpec(
        data_shape=(784,),
        latent_dim=latent,
        hidden=(hidden,),
        prior=cfg["prior"],
        guide=cfg["guide"],
        likelihood=cfg["likelihood"],
        model_options=dict(FAMILY_OPTIONS.get(cfg["family"], {})),
    )
    torch.manual_seed(0)
    module = build_module(cfg["family"], spec)
    if cfg["objective"] == DEFAULT["objective"]:  # the family's own ELBO (M2 enumerates)
        cfg["objective"] = module.elbo_objective
    k = cfg.get("particles", particles if cfg["objective"].startswith("iwae") else 1)
    objective = OBJECTIVES.get(cfg["objective"])(num_particles=k)
    return module, objective, torch.optim.Adam(module.parameters(), lr=lr), cfg


def with_conditions(module, x: torch.Tensor):
    """``x`` for a family without targets; for a conditional one, a batch with one
    covariate per row (uniform on [0, 1], fixed by seed); for the M2 model, unlabelled
    rows (label -1: the label is summed out, its costly case)."""
    if getattr(module, "n_classes", None):
        return Batch(x, module.targets(torch.full((x.shape[0],), -1)))
    if not module.condition_dim:
        return x
    g = torch.Generator().manual_seed(0)
    c = torch.rand(x.shape[0], module.condition_dim, generator=g)
    return Batch(x, module.targets(c))


def label(case: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in case.items())


def bench_case(case, x, args) -> dict:
    base = build({}, args.latent_dim, args.hidden, args.particles, args.lr)
    other = build(case, args.latent_dim, args.hidden, args.particles, args.lr)
    xb = [x[i * args.batch_size : (i + 1) * args.batch_size] for i in range(4)]
    xo = [with_conditions(other[0], data_for(other[3]["likelihood"], b)) for b in xb]

    def run(side, batches, n):
        module, objective, opt, _ = side
        for i in range(n):
            train_step(module, objective, opt, batches[i % len(batches)])

    with pyro.validation_enabled(False):
        run(base, xb, args.warmup)
        run(other, xo, args.warmup)
        rates = {"default": [], "component": []}
        for r in range(args.rounds):
            order = [("default", base, xb), ("component", other, xo)]
            for name, side, batches in order if r % 2 == 0 else order[::-1]:
                t0 = time.perf_counter()
                run(side, batches, args.steps)
                rates[name].append(args.steps * args.batch_size / (time.perf_counter() - t0))
    ratios = [c / d for c, d in zip(rates["component"], rates["default"], strict=True)]
    return {
        "case": label(case),
        "ratio": summarize(ratios),
        "component_samples_per_s": summarize(rates["component"]),
        "default_samples_per_s": summarize(rates["default"]),
    }


def markdown(result: dict) -> str:
    lines = [
        f"MLP 784-{result['hidden']}-{result['latent_dim']}, batch {result['batch_size']}, "
        f"median of {result['rounds']} interleaved rounds of {result['steps']} steps:",
        "",
        "| swapped component | samples/s | default samples/s | ratio to default |",
        "|---|---:|---:|---:|",
    ]
    for r in result["results"]:
        lines.append(
            f"| {r['case']} | {r['component_samples_per_s']['median']:,.0f} | "
            f"{r['default_samples_per_s']['median']:,.0f} | {r['ratio']['median']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-size", type=int, default=128, help="minibatch (default: 128)")
    p.add_argument("--latent-dim", type=int, default=50, help="latent size (default: 50)")
    p.add_argument("--hidden", type=int, default=400, help="hidden width (default: 400)")
    p.add_argument("--particles", type=int, default=5, help="K for iwae (default: 5)")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds (default: 5)")
    p.add_argument("--steps", type=int, default=20, help="steps per side per round (default: 20)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps per side (default: 5)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--threads", type=int, help="torch.set_num_threads")
    p.add_argument("--only", nargs="*", help="run only cases whose label contains one of these")
    p.add_argument("--out", metavar="DIR", help="write components.json and components.md here")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    x = synthetic_binary(4 * args.batch_size, 784, seed=0)
    results = []
    for case in cases(args.particles):
        if args.only and not any(s in label(case) for s in args.only):
            continue
        res = bench_case(case, x, args)
        print(f"{res['case']:>40}: ratio {res['ratio']['median']:.2f}", flush=True)
        results.append(res)
    result = {
        "batch_size": args.batch_size,
        "latent_dim": args.latent_dim,
        "hidden": args.hidden,
        "rounds": args.rounds,
        "steps": args.steps,
        "particles": args.particles,
        "machine": machine_info(args.threads),
        "results": results,
    }
    table = markdown(result)
    print(table)
    write_outputs(args.out, "components", result, table)
    return result


if __name__ == "__main__":
    main()
