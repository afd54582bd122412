"""The report's configuration table shows the options that apply to the run's family and
folds the ones only other families read, deciding from the registered estimators'
parameters."""

from __future__ import annotations

import re

import pytest

from pyrovae.config import ESTIMATOR_KEYS, defaults
from pyrovae.estimators import ESTIMATORS
from pyrovae.report import build_report
from pyrovae.report.html import config_table


def _split(html: str) -> tuple[set[str], set[str]]:
    """The option names shown, and those folded into the ``<details>`` block."""
    shown, _, folded = html.partition("<details")
    names = re.compile(r"<tr><th>([^<]+)</th><td")
    return set(names.findall(shown)), set(names.findall(folded))


def _params(family: str) -> set[str]:
    return set(ESTIMATORS.get(family)().get_params())


@pytest.mark.parametrize("family", ESTIMATORS.names())
def test_the_family_s_options_are_shown_and_the_others_folded(family):
    config = {**defaults(), "model": family}
    config = {k: v for k, v in config.items() if v not in (None, {})}
    shown, folded = _split(config_table(config, family))
    assert shown | folded == set(config) and not shown & folded
    every = set().union(*(_params(f) for f in ESTIMATORS.names()))
    assert folded == {k for k in config if k in every - _params(family)}
    # options of no family (the data, the model's name, the process count) always show
    assert {"data", "model", "val_fraction", "nproc"} <= shown
    assert ("<details" in config_table(config, family)) == bool(folded)


@pytest.mark.parametrize(
    "family, shown, folded",
    [
        ("vae", {"latent_dim", "prior", "beta"}, {"noise", "corruption", "top_dim"}),
        ("dae", {"noise", "corruption"}, {"prior", "top_dim", "layer_depth"}),
        ("hvae", {"top_dim", "layer_depth", "layer_gated", "top_from_x"}, {"noise"}),
        ("ae", {"latent_dim", "hidden"}, {"prior", "beta", "objective", "particles"}),
    ],
)
def test_examples(family, shown, folded):
    config = {k: v for k, v in {**defaults(), "model": family}.items() if v not in (None, {})}
    got_shown, got_folded = _split(config_table(config, family))
    assert shown <= got_shown and folded <= got_folded


def test_a_table_option_folds_with_its_entries():
    html = config_table({"model": "ae", "prior_options": {"k": 3}, "hidden": [8]}, "ae")
    assert _split(html) == ({"hidden", "model"}, {"prior_options.k"})
    assert "Options this ae run does not use (1)" in html


def test_an_unregistered_family_shows_everything():
    config = {"model": "mine", "noise": 0.1, "top_dim": 2}
    assert _split(config_table(config, "mine")) == (set(config), set())


def test_every_estimator_option_is_some_family_s():
    """Otherwise an estimator option would show for every family."""
    every = set().union(*(_params(f) for f in ESTIMATORS.names()))
    assert set(ESTIMATOR_KEYS) - {"model", "nproc"} <= every


def test_the_report_of_an_autoencoder_folds_the_vae_options(ae_run, tmp_path):
    page = build_report(ae_run, tmp_path / "r.html", n=50).read_text()
    section = page[page.index("<h3>Configuration</h3>") :]
    section = section[: section.index("</details>")]
    shown, folded = _split(section)
    assert {"latent_dim", "hidden", "data", "model"} <= shown
    assert {"prior", "beta", "objective", "noise", "top_dim"} <= folded
