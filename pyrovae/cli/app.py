"""The ``pyrovae`` command: its parser (one module per verb group adds its verbs) and its
entry point, which turns every error a user can cause into one line."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings

from .. import __version__
from ..errors import PyrovaeError, TrainingInterrupted
from . import analyze, compare, complete, components, evaluate, report, train

log = logging.getLogger("pyrovae")

#: The modules that add the verbs, in the order ``pyrovae --help`` lists them.
VERB_MODULES = (train, evaluate, analyze, complete, compare, report, components)


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (and exit with status 2), and whose
    help texts may be completed when they are shown: an action's ``complete_help()``
    (set by :func:`.train.add_config_options`) replaces its help in ``--help``."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message}\n")

    def format_help(self) -> str:
        for action in self._actions:
            complete = getattr(action, "complete_help", None)
            if complete is not None:
                action.help = complete()
        return super().format_help()


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``pyrovae`` and its verbs."""
    parser = Parser(
        prog="pyrovae",
        description="Variational autoencoders as Pyro programs, with autoencoder baselines.",
    )
    parser.add_argument("--version", action="version", version=f"pyrovae {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=Parser)
    sub.required = True
    for module in VERB_MODULES:
        module.register(sub)
    return parser


def setup_logging(verbose: bool) -> None:
    """Other libraries log at WARNING; pyrovae's own messages at INFO (DEBUG with -v)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.DEBUG if verbose else logging.INFO)


def run_verb(args: argparse.Namespace) -> int:
    """Run the verb of ``args``; return its exit status.

    A :class:`~pyrovae.errors.PyrovaeError` prints ``pyrovae: error: ...`` (status 2),
    an interruption (SIGINT, SIGTERM) one line saying what was kept. Warnings are held
    back while the verb runs: shown after it succeeds, dropped when it fails, so that an
    error is exactly one line (a corrupt file can make torch warn first).
    """
    with warnings.catch_warnings(record=True) as caught:
        try:
            status = args.func(args)
        except PyrovaeError as exc:
            for w in caught:
                log.debug("warning before the error: %s", w.message)
            print(f"pyrovae: error: {exc}", file=sys.stderr)
            return 2
        except TrainingInterrupted as exc:  # SIGINT or SIGTERM, its position saved
            print(f"pyrovae: {exc}", file=sys.stderr)
            return exc.exit_status
        except KeyboardInterrupt:
            print("pyrovae: interrupted; the last checkpoint is kept", file=sys.stderr)
            return 130
        except BrokenPipeError:  # output piped into a program that stopped reading
            sys.stderr.close()
            return 141
    for w in caught:
        warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return status


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pyrovae`` command."""
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    status = run_verb(args)
    ranks = sys.modules.get("pyrovae.training.distributed")  # loaded only by training
    if ranks is not None and ranks.joined_from_env():  # a rank started by torchrun
        ranks.end_rank(status)
    return status
