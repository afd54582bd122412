"""The arguments several verbs share have one spelling, one default and one type in every
verb that takes them (checked on the parser itself, verb by verb), and progress bars show
only on a terminal without ``--no-progress``."""

from __future__ import annotations

import argparse
import io

import pytest

from pyrovae.cli import args as shared
from pyrovae.cli import build_parser
from pyrovae.errors import ConfigError


def _verbs() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "verb")
    return dict(action.choices)


def _actions(verb: str) -> dict[str, argparse.Action]:
    return {a.dest: a for a in _verbs()[verb]._actions}


#: A parser holding every shared argument once, as the helpers define them.
REFERENCE = argparse.ArgumentParser()
shared.add_run_argument(REFERENCE)
shared.add_data_options(REFERENCE)
shared.add_n(REFERENCE, "points")
shared.add_samples(REFERENCE)
shared.add_seed(REFERENCE)
shared.add_progress(REFERENCE)
SHARED = {a.dest: a for a in REFERENCE._actions if a.dest != "help"}

#: Verbs that do random or long work: they take --seed and --no-progress.
WORKING_VERBS = (
    "train", "evaluate", "sample", "analyze", "select", "compare", "report", "complete"
)  # fmt: skip

#: Declared exceptions: train's --data and --seed are options of the run's config, and
#: complete's --data is a file of partly observed rows (PARTIAL), not a data set.
EXCEPTIONS = {("train", "seed"), ("train", "data"), ("complete", "data")}

CASES = [
    (verb, dest)
    for verb in _verbs()
    for dest in SHARED
    if dest in _actions(verb) and (verb, dest) not in EXCEPTIONS
]


def test_the_shared_defaults():
    assert (shared.N, shared.SAMPLES, shared.SEED) == (500, 500, 0)
    assert SHARED["n"].option_strings == ["-n", "--n"]


@pytest.mark.parametrize("verb, dest", CASES, ids=[f"{v}:{d}" for v, d in CASES])
def test_a_shared_argument_is_the_same_in_every_verb(verb, dest):
    """Spelling, type, choices, metavar and default agree with the helper's; the one
    exception is declared: evaluate's --samples is off unless given (0 skips it)."""
    action, ref = _actions(verb)[dest], SHARED[dest]
    assert action.option_strings == ref.option_strings
    assert (action.type, action.choices, action.nargs) == (ref.type, ref.choices, ref.nargs)
    assert action.metavar == ref.metavar
    if (verb, dest) == ("evaluate", "samples"):
        assert action.default == 0 and "0 skips the estimate (default: 0" in action.help
    else:
        assert action.default == ref.default
    if isinstance(action.default, int) and not isinstance(action.default, bool):
        assert f"(default: {action.default}" in action.help


def test_every_verb_that_works_takes_the_seed_and_no_progress():
    verbs = _verbs()
    assert set(verbs) == {*WORKING_VERBS, "components"}
    for verb in WORKING_VERBS:
        actions = _actions(verb)
        assert "no_progress" in actions, verb
        assert verb == "train" or actions["seed"].default == shared.SEED, verb
    assert "no_progress" not in _actions("components")


def test_the_help_of_a_count_says_when_zero_skips():
    actions = _actions("analyze")
    for dest in ("mcmc_points", "sbc"):
        assert "0 skips it" in actions[dest].help
    assert "0 skips" not in actions["draws"].help


class _Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(
    "tty, flag, shown", [(True, [], True), (True, ["--no-progress"], False), (False, [], False)]
)
def test_progress_shows_only_on_a_terminal_without_no_progress(monkeypatch, tty, flag, shown):
    monkeypatch.setattr("sys.stderr", _Stream(tty))
    for verb in WORKING_VERBS:
        run = [] if verb == "train" else ["r"]
        run += ["--data", "partial.csv"] if verb == "complete" else []
        args = build_parser().parse_args([verb, *run, *flag])
        assert shared.show_progress(args) is shown, verb


@pytest.mark.parametrize("value, ok", [(0, False), (1, True)])
def test_check_at_least_names_the_flag(value, ok):
    args = argparse.Namespace(mcmc_points=value)
    if ok:
        shared.check_at_least(args, 1, "mcmc_points")
    else:
        with pytest.raises(ConfigError, match="^--mcmc-points must be >= 1; got 0$"):
            shared.check_at_least(args, 1, "mcmc_points")
