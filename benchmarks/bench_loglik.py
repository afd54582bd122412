"""Log-likelihood evaluation rate against the floating-point work it implies.

Importance-sampled log p(x) (``pyrovae.analysis.log_likelihood``) on a VAE with
the MLP 784-400-50 and a Bernoulli likelihood: images x importance samples per
second, the multiply-add work of the decoder per sample (the encoder runs once
per image), and the achieved rate as a fraction of the machine's float32
matrix-multiply rate. The matrix-multiply rate is measured in the same process,
right before and right after every evaluation (``--matmul-repeats`` products of
two 1024 x 1024 matrices, timed together so that they see the same load as the
evaluation); the fraction of each round uses the mean of the two. Each thread
count (``--threads 1,2``) runs ``--rounds`` rounds, and the medians are reported.

Each round times the evaluation twice, alternating: with the direct log-weights
(the default, :mod:`pyrovae.inference.fastpath`) and through Pyro's traces
(``direct=False``), from the same seed, and records the largest difference
between the two. With a pyrovae that has no ``direct`` switch (to measure an
older checkout: ``PYTHONPATH=/path/to/checkout``) only the default is timed.

With ``--prior mog`` or ``--prior vamp`` each round also times the evaluation with
the mixture prior's density computed elementwise (torch's ``MixtureSameFamily``, an
(images x samples x K x d) tensor of differences) instead of pyrovae's two matrix
products (:class:`pyrovae.priors.mixture.DiagonalNormalMixture`) and reports the
speed-up.

    python benchmarks/bench_loglik.py --threads 1,2 --out results/
    python benchmarks/bench_loglik.py --prior vamp --threads 2 --out results/
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from unittest import mock

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_info, parse_int_list, synthetic_binary, write_outputs  # noqa: E402

from pyrovae.analysis import log_likelihood  # noqa: E402
from pyrovae.models import ModuleSpec, build_module  # noqa: E402
from pyrovae.priors.mixture import DiagonalNormalMixture  # noqa: E402

#: Side of the square float32 matrices of the reference product.
MATMUL_N = 1024


def matmul_rate(repeats: int, n: int = MATMUL_N) -> float:
    """GFLOP/s of ``repeats`` n x n float32 matrix products timed together (after one
    untimed product)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    t0 = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return repeats * 2 * n**3 / (time.perf_counter() - t0) / 1e9


def decoder_flops(latent: int, hidden: int, dim: int) -> int:
    """Floating-point operations of one decoder pass (2 per multiply-add)."""
    return 2 * (latent * hidden + hidden * dim)


def has_direct_switch() -> bool:
    """Whether this pyrovae's ``log_likelihood`` takes ``direct``."""
    return "direct" in inspect.signature(log_likelihood).parameters


def _variants(mixture: bool) -> dict[str, dict]:
    """The timed evaluations of one round, by name: keyword arguments and patches."""
    variants: dict[str, dict] = {"direct": {}}
    if has_direct_switch():
        variants["traced"] = {"direct": False}
    if mixture:
        variants["elementwise_mixture"] = {"patch": True}
    return variants


def run_threads(args, module, x, threads: int) -> dict:
    """``args.rounds`` rounds at ``threads`` threads: medians and each round's figures."""
    torch.set_num_threads(threads)
    with torch.no_grad():
        mixture = isinstance(module.prior(), DiagonalNormalMixture)
    elementwise = DiagonalNormalMixture.__bases__[0].log_prob
    variants = _variants(mixture)
    flops = decoder_flops(args.latent_dim, args.hidden, 784)
    work = args.images * args.samples

    def evaluate(options: dict) -> tuple[float, torch.Tensor]:
        kwargs = {k: v for k, v in options.items() if k != "patch"}
        patch = (
            mock.patch.object(DiagonalNormalMixture, "log_prob", elementwise)
            if options.get("patch")
            else contextlib.nullcontext()
        )
        torch.manual_seed(2)
        with patch:
            t0 = time.perf_counter()
            ll = log_likelihood(
                module, x, samples=args.samples, batch_size=args.batch_size, **kwargs
            )
            return time.perf_counter() - t0, ll

    log_likelihood(module, x[:2], samples=min(args.samples, 100))  # warm-up
    rounds = []
    values: dict[str, torch.Tensor] = {}
    for _ in range(args.rounds):
        record: dict = {}
        for name, options in variants.items():
            before = matmul_rate(args.matmul_repeats)
            seconds, values[name] = evaluate(options)
            after = matmul_rate(args.matmul_repeats)
            peak = (before + after) / 2
            rate = work / seconds
            record[name] = {
                "seconds": seconds,
                "image_samples_per_s": rate,
                "achieved_gflops": rate * flops / 1e9,
                "matmul_gflops": peak,
                "fraction_of_matmul_rate": rate * flops / 1e9 / peak,
            }
        rounds.append(record)
    out: dict = {"threads": threads, "rounds": rounds}
    for name in variants:
        out[name] = {
            key: statistics.median(r[name][key] for r in rounds) for key in rounds[0][name]
        }
    out["mean_log_likelihood"] = float(values["direct"].mean())
    for name in variants:
        if name != "direct":
            diff = (values["direct"] - values[name]).abs().max()
            out[name]["max_abs_difference_nats"] = float(diff)
    if "elementwise_mixture" in out:
        out["speedup_vs_elementwise_mixture"] = (
            out["elementwise_mixture"]["seconds"] / out["direct"]["seconds"]
        )
    return out


def run(args) -> dict:
    torch.manual_seed(0)
    spec = ModuleSpec(
        data_shape=(784,), latent_dim=args.latent_dim, hidden=(args.hidden,), prior=args.prior
    )
    module = build_module("vae", spec)
    x = synthetic_binary(args.images, 784, seed=1)
    threads_before = torch.get_num_threads()
    machine = machine_info(threads_before)
    try:
        per_threads = [run_threads(args, module, x, t) for t in args.threads]
    finally:
        torch.set_num_threads(threads_before)
    machine.pop("torch_threads", None)
    machine["load_average_after"] = machine_info()["load_average"]
    return {
        "prior": args.prior,
        "images": args.images,
        "samples": args.samples,
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "matmul_repeats": args.matmul_repeats,
        "decoder_flops_per_sample": decoder_flops(args.latent_dim, args.hidden, 784),
        "direct_switch": has_direct_switch(),
        "results": per_threads,
        "machine": machine,
    }


def markdown(r: dict) -> str:
    table = (
        "| prior | threads | path | images x samples / s | decoder GFLOP/s | "
        "matmul GFLOP/s | fraction |\n|---|---:|---|---:|---:|---:|---:|\n"
    )
    for res in r["results"]:
        for name in ("direct", "traced", "elementwise_mixture"):
            if name not in res:
                continue
            v = res[name]
            table += (
                f"| {r['prior']} | {res['threads']} | {name} | {v['image_samples_per_s']:,.0f} | "
                f"{v['achieved_gflops']:.1f} | {v['matmul_gflops']:.1f} | "
                f"{v['fraction_of_matmul_rate']:.2f} |\n"
            )
    table += f"\nMedians of {r['rounds']} rounds; load average {r['machine'].get('load_average')}"
    table += f" before, {r['machine'].get('load_average_after')} after.\n"
    for res in r["results"]:
        for name in ("traced", "elementwise_mixture"):
            if name in res:
                table += (
                    f"\n{res['threads']} thread(s): largest difference in log p(x) between "
                    f"direct and {name}: {res[name]['max_abs_difference_nats']:.1e} nats."
                )
    return table + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=20, help="images (default: 20)")
    p.add_argument("--samples", type=int, default=5000, help="K (default: 5000)")
    p.add_argument("--batch-size", type=int, default=100, help="images per pass (default: 100)")
    p.add_argument("--latent-dim", type=int, default=50, help="latent size (default: 50)")
    p.add_argument("--hidden", type=int, default=400, help="hidden width (default: 400)")
    p.add_argument("--prior", default="normal", help="registered prior (default: normal)")
    p.add_argument("--rounds", type=int, default=3, help="rounds per thread count (default: 3)")
    p.add_argument(
        "--matmul-repeats",
        type=int,
        default=20,
        help="matrix products timed before and after each evaluation (default: 20)",
    )
    p.add_argument(
        "--threads",
        type=parse_int_list,
        default=None,
        help="comma-separated torch thread counts (default: the current one)",
    )
    p.add_argument("--out", metavar="DIR", help="write NAME.json and NAME.md here")
    p.add_argument(
        "--name", help="output name (default: loglik, or loglik_PRIOR for another prior)"
    )
    args = p.parse_args(argv)
    if args.threads is None:
        args.threads = [torch.get_num_threads()]
    return args


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    result = run(args)
    table = markdown(result)
    print(table)
    name = args.name or ("loglik" if args.prior == "normal" else f"loglik_{args.prior}")
    write_outputs(args.out, name, result, table)
    return result


if __name__ == "__main__":
    main()
