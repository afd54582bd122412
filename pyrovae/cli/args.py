"""The arguments that several verbs share, defined once: one spelling, one meaning and one
default each, whichever verb takes them.

======================  ==============================================  ================
argument                meaning                                         default
======================  ==============================================  ================
``RUN``                 a run folder (or a checkpoint file)
``--data NAME|PATH``    data to use instead of the run's own            the run's data
``--split``             the held-out split to work on                   ``test``
``-n``, ``--n N``       data points: the held-out points scored         :data:`N`
                        (analyze, compare, report) or the samples
                        drawn (sample)
``--samples K``         importance samples per data point for log p(x)  :data:`SAMPLES`
                        (``evaluate``: off unless given; 0 skips it)
``--seed S``            seed of every random draw                       :data:`SEED`
``--no-progress``       hide the progress bars                          shown on a
                                                                        terminal
======================  ==============================================  ================

Progress bars are drawn only when stderr is a terminal and ``--no-progress`` is not
given (:func:`show_progress`); the library functions take the answer as ``progress``.
Counts are checked after parsing (:func:`check_at_least`), so that a bad value is a
one-line ``pyrovae: error`` like every other error a user can cause.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Callable
from pathlib import Path

from ..errors import ConfigError

#: Default of ``-n/--n``: held-out data points scored, or samples drawn.
N = 500
#: Default of ``--samples``: importance samples per data point (5000 for reported figures).
SAMPLES = 500
#: Default of ``--seed``.
SEED = 0
#: The splits a verb may work on.
SPLITS = ("test", "val", "train")


def add_verb(sub, name: str, func: Callable, summary: str) -> argparse.ArgumentParser:
    """The parser of a verb that runs ``func``: ``summary`` is its line in
    ``pyrovae --help``, ``func``'s docstring its description in ``pyrovae NAME --help``."""
    p = sub.add_parser(name, help=summary, description=inspect.cleandoc(func.__doc__ or ""))
    p.set_defaults(func=func)
    return p


def add_count(
    parser: argparse.ArgumentParser, flag_: str, default: int, what: str, *, skip: bool = False
) -> None:
    """An integer option ``flag_`` (``what`` it counts); with ``skip``, 0 skips that step."""
    text = what + ("; 0 skips it" if skip else "") + f" (default: {default})"
    parser.add_argument(flag_, type=int, default=default, help=text)


def add_switch(parser: argparse.ArgumentParser, flag_: str, what: str) -> None:
    """A flag that is off unless given."""
    parser.add_argument(flag_, action="store_true", help=what)


def add_run_argument(parser: argparse.ArgumentParser, *, many: bool = False) -> None:
    """The positional ``RUN`` (``RUN [RUN ...]`` with ``many``)."""
    if many:
        parser.add_argument("runs", metavar="RUN", nargs="+", help="run folders (or checkpoints)")
    else:
        parser.add_argument("run", metavar="RUN", help="run folder (or checkpoint file)")


def add_data_options(parser: argparse.ArgumentParser, *, split: bool = True) -> None:
    """``--data`` (other data, split and scaled as the run's) and, with ``split``,
    ``--split``."""
    parser.add_argument(
        "--data",
        metavar="NAME|PATH",
        help="use this data instead of the run's own (split and scaled as the run's data)",
    )
    if split:
        parser.add_argument(
            "--split",
            default="test",
            choices=SPLITS,
            help="which split (default: test)",
        )


def add_n(parser: argparse.ArgumentParser, what: str) -> None:
    """``-n/--n N``: how many data points; ``what`` says which ones."""
    parser.add_argument(
        "-n", "--n", type=int, default=N, metavar="N", help=f"{what} (default: {N})"
    )


def add_samples(parser: argparse.ArgumentParser, *, optional: bool = False) -> None:
    """``--samples K``: importance samples per data point for log p(x). With
    ``optional`` the estimate is an extra that is off by default (0 skips it)."""
    default = 0 if optional else SAMPLES
    text = "importance samples per data point for log p(x) (5000 for reported figures)"
    if optional:
        text += f"; 0 skips the estimate (default: 0; the other verbs use {SAMPLES})"
    else:
        text += f" (default: {SAMPLES})"
    parser.add_argument("--samples", type=int, default=default, metavar="K", help=text)


def add_weight_draws(parser: argparse.ArgumentParser) -> None:
    """``--weight-draws S``: draws of a Bayesian decoder's weights in log p(x)."""
    from ..config import WEIGHT_DRAWS

    add_count(
        parser,
        "--weight-draws",
        WEIGHT_DRAWS,
        "draws S of a Bayesian decoder's weights in log p(x) (S x K decodes; ignored for a "
        "point decoder)",
    )


def add_weights(parser: argparse.ArgumentParser) -> None:
    """``--weights mean|sample``: the decoder weights a Bayesian decoder decodes with."""
    parser.add_argument(
        "--weights",
        choices=("mean", "sample"),
        default="mean",
        help="a Bayesian decoder's weights: the posterior mean, or a draw from q(theta) per "
        "point (default: mean; a point decoder has only its own)",
    )


def add_seed(parser: argparse.ArgumentParser) -> None:
    """``--seed S``."""
    parser.add_argument(
        "--seed", type=int, default=SEED, metavar="S", help=f"random seed (default: {SEED})"
    )


def add_progress(parser: argparse.ArgumentParser) -> None:
    """``--no-progress``."""
    add_switch(
        parser,
        "--no-progress",
        "hide the progress bars (they are shown only when stderr is a terminal)",
    )


def add_output(parser: argparse.ArgumentParser, what: str, default: str | None = None) -> None:
    """``--output``: ``what`` is its help text (it names the default)."""
    metavar = "DIR" if "folder" in what else "FILE"
    parser.add_argument("--output", metavar=metavar, default=default, help=what)


def show_progress(args: argparse.Namespace) -> bool:
    """Whether to draw progress bars: stderr is a terminal and ``--no-progress`` is off."""
    if getattr(args, "no_progress", False):
        return False
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


def flag(name: str) -> str:
    """The command-line spelling of an argument's ``dest``."""
    return "--" + name.replace("_", "-")


def check_at_least(args: argparse.Namespace, low: int, *names: str) -> None:
    """Raise :class:`ConfigError` (``--NAME must be >= LOW; got V``) for the first of
    ``names`` whose value is below ``low``."""
    for name in names:
        value = getattr(args, name)
        if value < low:
            raise ConfigError(f"{flag(name)} must be >= {low}; got {value}")


def add_condition(parser: argparse.ArgumentParser, verb: str) -> None:
    """``--condition CLASS`` or ``--condition-values FILE`` (conditional models)."""
    given = parser.add_mutually_exclusive_group()
    given.add_argument(
        "--condition",
        metavar="CLASS",
        help=f"conditional models: {verb} given this class (an index, or a class name of "
        "the run's label column)",
    )
    given.add_argument(
        "--condition-values",
        metavar="FILE",
        help=f"conditional models: {verb} given these covariates (.npy or .csv; one row, "
        "used for every row, or one row per row)",
    )


def condition_given(args: argparse.Namespace, est):
    """The condition of ``--condition`` (a class index or name) or ``--condition-values``
    (a file of covariate rows), or None."""
    import numpy as np

    from ..data.columns import encode_labels
    from ..errors import DataError

    if args.condition is not None:
        classes = est.data_info_.get("classes")
        if classes is not None:
            y, _ = encode_labels([args.condition], "--condition", classes)
            return int(y[0])
        text = str(args.condition).strip()
        if not text.lstrip("-").isdigit():
            raise DataError(f"--condition {text!r} is not a class index")
        return int(text)
    if args.condition_values is not None:
        path = Path(args.condition_values)
        if not path.is_file():
            raise DataError(f"--condition-values: no file {str(path)!r}")
        try:
            rows = (
                np.load(path) if path.suffix == ".npy" else np.loadtxt(path, delimiter=",", ndmin=2)
            )
        except ValueError as exc:
            raise DataError(f"--condition-values: cannot read {str(path)!r}: {exc}") from None
        return np.asarray(rows, dtype=np.float32)
    return None
