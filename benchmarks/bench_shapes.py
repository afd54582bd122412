"""Time to render the procedural shapes grid (``pyrovae train --data shapes``).

:class:`pyrovae.data.shapes.ShapesGenerator` draws the full factorial grid (1,800
images of 32 x 32 with 4 x 4 supersampling) the first time the data set is loaded
and caches it; this is what a user waits for on ``--data shapes``. Each round renders
the grid with a fresh generator (no cache) and records the wall time; the table gives
the median, min and max over the rounds and the images per second at the median.
When this benchmark was written the grid took 0.32 s (median of 3 rounds, one process
on a shared 2-core development machine).

    python benchmarks/bench_shapes.py --rounds 5 --out results/
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_info, summarize, write_outputs  # noqa: E402

from pyrovae.data.shapes import ShapesGenerator  # noqa: E402


def run(args) -> dict:
    """Render the grid ``args.rounds`` times (on ``--threads`` torch threads, restored
    afterwards) and return the record."""
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        seconds, images = [], 0
        for _ in range(args.rounds):
            gen = ShapesGenerator()
            t0 = time.perf_counter()
            grid, _ = gen.grid()
            seconds.append(time.perf_counter() - t0)
            images = int(grid.shape[0])
        return {
            "images": images,
            "image_shape": list(grid.shape[1:]),
            "rounds": args.rounds,
            "seconds": seconds,
            "summary": summarize(seconds),
            "images_per_second": images / summarize(seconds)["median"],
            "machine": machine_info(args.threads),
        }
    finally:
        torch.set_num_threads(threads)


def markdown(record: dict) -> str:
    s = record["summary"]
    return (
        f"Rendering the shapes grid ({record['images']} images of "
        f"{' x '.join(map(str, record['image_shape']))}), {record['rounds']} rounds.\n\n"
        "| median (s) | min (s) | max (s) | images/s |\n|---:|---:|---:|---:|\n"
        f"| {s['median']:.3f} | {s['min']:.3f} | {s['max']:.3f} | "
        f"{record['images_per_second']:.0f} |\n"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5, help="renders of the grid (default 5)")
    p.add_argument("--threads", type=int, help="torch.set_num_threads")
    p.add_argument("--out", metavar="DIR", help="write shapes.json and shapes.md here")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error("--rounds must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    record = run(args)
    table = markdown(record)
    print(table)
    write_outputs(args.out, "shapes", record, table)
    return record


if __name__ == "__main__":
    main()
