"""Log-likelihood evaluation rate against the floating-point work it implies.

Importance-sampled log p(x) (``pyrovae.analysis.log_likelihood``) on a VAE with
the MLP 784-400-50 and a Bernoulli likelihood: images x importance samples per
second, the multiply-add work of the decoder per sample (the encoder runs once
per image), and the achieved rate as a fraction of the machine's matrix-multiply
rate, measured in the same process with a square float32 ``torch.mm``.

With ``--prior mog`` or ``--prior vamp`` it also times the same evaluation with the
mixture prior's density computed elementwise (torch's ``MixtureSameFamily``, an
(images x samples x K x d) tensor of differences) instead of pyrovae's two matrix
products (:class:`pyrovae.priors.mixture.DiagonalNormalMixture`), alternating the two
in the same process, and reports the speed-up.

    python benchmarks/bench_loglik.py --images 20 --samples 5000 --out results/
    python benchmarks/bench_loglik.py --prior vamp --out results/
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from unittest import mock

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_info, synthetic_binary, write_outputs  # noqa: E402

from pyrovae.analysis import log_likelihood  # noqa: E402
from pyrovae.models import ModuleSpec, build_module  # noqa: E402
from pyrovae.priors.mixture import DiagonalNormalMixture  # noqa: E402


def matmul_rate(n: int = 1024, repeats: int = 5) -> float:
    """Best float32 GFLOP/s of an n x n matrix product."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * n**3 / (time.perf_counter() - t0) / 1e9)
    return best


def decoder_flops(latent: int, hidden: int, dim: int) -> int:
    """Floating-point operations of one decoder pass (2 per multiply-add)."""
    return 2 * (latent * hidden + hidden * dim)


def run(args) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    spec = ModuleSpec(
        data_shape=(784,), latent_dim=args.latent_dim, hidden=(args.hidden,), prior=args.prior
    )
    module = build_module("vae", spec)
    x = synthetic_binary(args.images, 784, seed=1)

    def evaluate() -> tuple[float, torch.Tensor]:
        torch.manual_seed(2)
        t0 = time.perf_counter()
        ll = log_likelihood(module, x, samples=args.samples, batch_size=args.batch_size)
        return time.perf_counter() - t0, ll

    log_likelihood(module, x[:2], samples=min(args.samples, 100))  # warm-up
    with torch.no_grad():
        mixture = isinstance(module.prior(), DiagonalNormalMixture)
    extra: dict = {}
    if mixture:
        fast, slow = [], []
        elementwise = DiagonalNormalMixture.__bases__[0].log_prob
        for _ in range(args.rounds):
            seconds, ll = evaluate()
            fast.append(seconds)
            with mock.patch.object(DiagonalNormalMixture, "log_prob", elementwise):
                seconds, ll_ref = evaluate()
            slow.append(seconds)
        seconds = statistics.median(fast)
        extra = {
            "elementwise_seconds": statistics.median(slow),
            "speedup_vs_elementwise_mixture": statistics.median(slow) / seconds,
            "max_abs_difference_nats": float((ll - ll_ref).abs().max()),
            "rounds": args.rounds,
        }
    else:
        seconds, ll = evaluate()
    rate = args.images * args.samples / seconds
    flops = decoder_flops(args.latent_dim, args.hidden, 784)
    peak = matmul_rate()
    return {
        "prior": args.prior,
        **extra,
        "images": args.images,
        "samples": args.samples,
        "seconds": seconds,
        "image_samples_per_s": rate,
        "decoder_flops_per_sample": flops,
        "achieved_gflops": rate * flops / 1e9,
        "matmul_gflops": peak,
        "fraction_of_matmul_rate": rate * flops / 1e9 / peak,
        "mean_log_likelihood": float(ll.mean()),
        "machine": machine_info(args.threads),
    }


def markdown(r: dict) -> str:
    table = (
        "| prior | images x samples / s | decoder GFLOP/s | matmul GFLOP/s | fraction |\n"
        "|---|---:|---:|---:|---:|\n"
        f"| {r['prior']} | {r['image_samples_per_s']:,.0f} | {r['achieved_gflops']:.1f} | "
        f"{r['matmul_gflops']:.1f} | {r['fraction_of_matmul_rate']:.2f} |\n"
    )
    if "speedup_vs_elementwise_mixture" in r:
        table += (
            f"\nMixture density by matrix products: {r['seconds']:.2f} s; elementwise: "
            f"{r['elementwise_seconds']:.2f} s (median of {r['rounds']}); speed-up "
            f"{r['speedup_vs_elementwise_mixture']:.2f}; largest difference in log p(x) "
            f"{r['max_abs_difference_nats']:.1e} nats.\n"
        )
    return table


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=20, help="images (default: 20)")
    p.add_argument("--samples", type=int, default=5000, help="K (default: 5000)")
    p.add_argument("--batch-size", type=int, default=100, help="images per pass (default: 100)")
    p.add_argument("--latent-dim", type=int, default=50, help="latent size (default: 50)")
    p.add_argument("--hidden", type=int, default=400, help="hidden width (default: 400)")
    p.add_argument("--prior", default="normal", help="registered prior (default: normal)")
    p.add_argument(
        "--rounds", type=int, default=3, help="alternations for a mixture prior (default: 3)"
    )
    p.add_argument("--threads", type=int, help="torch.set_num_threads")
    p.add_argument("--out", metavar="DIR", help="write loglik.json and loglik.md here")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    result = run(args)
    table = markdown(result)
    print(table)
    name = "loglik" if args.prior == "normal" else f"loglik_{args.prior}"
    write_outputs(args.out, name, result, table)
    return result


if __name__ == "__main__":
    main()
