"""The M2 estimator: a classifier by scikit-learn's conventions, its labels through
fit, save / load and resume, and one-line errors for what it cannot use."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pyrovae.api import M2, VAE, load, resume
from pyrovae.errors import ConfigError, DataError

SMALL = dict(latent_dim=4, hidden=(32,), epochs=2, batch_size=64, seed=0, likelihood="bernoulli")


@pytest.fixture(scope="module")
def semi(digits_module):
    """300 training rows, 30 of them labelled (3 per class), and 100 validation rows."""
    d = digits_module
    x, y = d.train[:300], d.y_train[:300].clone()
    keep = torch.zeros(300, dtype=torch.bool)
    for c in range(10):
        keep[torch.nonzero(y == c)[:3, 0]] = True
    y[~keep] = -1
    return x, y, d.val[:100], d.y_val[:100]


@pytest.fixture(scope="module")
def digits_module():
    from pyrovae.data import load_data

    return load_data("digits")


@pytest.fixture(scope="module")
def fitted(semi):
    x, y, xv, _ = semi
    return M2(**SMALL).fit(x, y, X_val=xv)


def test_classifier_conventions(fitted, semi):
    x, _, xv, yv = semi
    proba = fitted.predict_proba(xv)
    assert isinstance(proba, np.ndarray) and proba.shape == (100, 10)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-5)
    pred = fitted.predict(xv)
    assert pred.shape == (100,) and set(pred) <= set(range(10))
    np.testing.assert_array_equal(pred, proba.argmax(1))
    assert fitted.score(xv, yv) == pytest.approx(float((pred == yv.numpy()).mean()))
    assert list(fitted.classes_) == list(range(10))
    assert fitted.n_labelled_ == 30 and fitted.n_rows_ == 300
    # the paper's alpha = 0.1 N per data point: 0.1 * 300 / 30 per labelled row
    assert float(fitted.module_.aux_scale) == pytest.approx(1.0)


def test_score_counts_labelled_rows_only(fitted, semi):
    _, _, xv, yv = semi
    y = yv.clone()
    y[50:] = -1
    assert fitted.score(xv, y) == pytest.approx(fitted.score(xv[:50], yv[:50]))


def test_save_load_keeps_the_classes(fitted, semi, tmp_path):
    _, _, xv, yv = semi
    fitted.save(tmp_path / "m2.pt")
    again = load(tmp_path / "m2.pt")
    assert type(again) is M2 and again.n_classes == 10
    np.testing.assert_array_equal(again.predict_proba(xv), fitted.predict_proba(xv))
    assert float(again.module_.aux_scale) == float(fitted.module_.aux_scale)


def test_resume_continues_with_the_labels(semi, tmp_path):
    """Two epochs then a third by resume gives the weights of three epochs at once."""
    x, y, xv, yv = semi
    run = tmp_path / "run"
    M2(**SMALL).fit(x, y, X_val=xv, y_val=yv, run_dir=run)
    resumed = resume(run, x, xv, epochs=3, y_train=y, y_val=yv)
    whole = M2(**{**SMALL, "epochs": 3}).fit(x, y, X_val=xv, y_val=yv)
    for a, b in zip(
        resumed.module_.state_dict().values(), whole.module_.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b)


def test_predict_on_a_family_that_does_not_classify(semi):
    x, _, _, _ = semi
    vae = VAE(**SMALL).fit(x[:64])
    with pytest.raises(ConfigError, match="^predict needs a classifier family .m2.; the vae"):
        vae.predict(x[:3])


@pytest.mark.parametrize(
    "y, error, message",
    [
        (None, ConfigError, "the m2 model needs labels: pass y to fit"),
        ("all-unlabelled", DataError, "the m2 model needs labelled rows; every label is -1"),
        ("one-class", DataError, "the labels have a single class .3.; the m2 model needs"),
        ("strings", DataError, "labels must be integer class indices"),
    ],
)
def test_unusable_labels_are_refused(semi, y, error, message):
    x = semi[0][:20]
    values = {
        "all-unlabelled": -np.ones(20),
        "one-class": np.where(np.arange(20) < 5, 3, -1),
        "strings": np.array(["a", "b"] * 10),
    }
    with pytest.raises(error, match=f"^{message}"):
        M2(**SMALL).fit(x, values.get(y) if isinstance(y, str) else y)


@pytest.mark.parametrize(
    "params, message",
    [
        (dict(objective="iwae"), "the m2 model sums its labels out exactly, which the iwae"),
        (dict(n_classes=1), "n_classes must be 0 (from the labels) or >= 2; got 1"),
        (dict(aux_weight=-1.0), "aux_weight must be >= 0; got -1.0"),
    ],
)
def test_bad_parameters(params, message, semi):
    x, y, _, _ = semi
    with pytest.raises(ConfigError, match="^" + message.replace("(", ".").replace(")", ".")):
        M2(**{**SMALL, **params}).fit(x[:20], y[:20])


def test_labels_beyond_n_classes(semi):
    x, y, _, _ = semi
    with pytest.raises(DataError, match="^label 9 is not a class index below n_classes=5$"):
        M2(**{**SMALL, "n_classes": 5}).fit(x, y)


def test_missing_entries_are_refused(semi):
    x, y, _, _ = semi
    with pytest.raises(ConfigError, match="^the m2 model does not train with missing entries"):
        M2(**{**SMALL, "mask_rate": 0.2}).fit(x[:20], y[:20])


def test_prior_module_is_refused_with_one_line(fitted):
    """A decoder prior draws z alone; the m2 decoder also reads a label."""
    from pyrovae.api import prior_module

    with pytest.raises(ConfigError, match="prior_module needs an unconditional family") as info:
        prior_module(fitted, "f")
    assert "\n" not in str(info.value)
