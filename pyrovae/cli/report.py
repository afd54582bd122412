"""``pyrovae report RUN``: one self-contained HTML page of a run
(:func:`pyrovae.report.build_report`)."""

from __future__ import annotations

import argparse
import time

from ..runs import to_json
from .args import add_data_options, add_n, add_output, add_progress, add_seed, check_at_least


def register(sub) -> None:
    """Add the ``report`` verb."""
    p = sub.add_parser(
        "report",
        help="write a self-contained HTML report of a run",
        description="Write one HTML file with the run's configuration and summary numbers, "
        "training curves, reconstructions with uncertainty maps, prior samples, latent "
        "traversals, linear and spherical interpolations, the latent space, KL per latent "
        "dimension and the posterior analysis of `pyrovae analyze` where it ran; figures "
        "are embedded, so the file stands alone.",
    )
    p.add_argument("run", metavar="RUN", help="run folder")
    add_output(p, "HTML file to write (default: RUN/report.html)")
    add_n(p, "held-out data points for the latent view and the numbers")
    add_data_options(p, split=False)
    add_seed(p)
    add_progress(p)
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from ..report import build_report

    check_at_least(args, 1, "n")
    t0 = time.perf_counter()
    path = build_report(args.run, args.output, n=args.n, data=args.data, seed=args.seed)
    seconds = round(time.perf_counter() - t0, 2)
    print(to_json({"report": str(path), "bytes": path.stat().st_size, "seconds": seconds}))
    return 0
