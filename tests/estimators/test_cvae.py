"""The CVAE estimator: conditions at fit time, in the checkpoint, at sampling time, and
through resume, analyze and the ArviZ export."""

from __future__ import annotations

import numpy as np
import pyro
import pytest
import torch

from pyrovae.analysis.export import to_arviz
from pyrovae.api import CVAE, VAE, load, resume
from pyrovae.data import Batch
from pyrovae.errors import ConfigError, DataError

SMALL = {"latent_dim": 2, "hidden": (16,), "batch_size": 64, "seed": 0, "progress": False}


@pytest.fixture(scope="module")
def labelled(digits):
    x = (digits.train[:200] > 0.5).float()
    xv = (digits.val[:60] > 0.5).float()
    return x, digits.labels("train")[:200], xv, digits.labels("val")[:60]


@pytest.fixture(scope="module")
def fitted(labelled):
    x, y, xv, yv = labelled
    return CVAE(prior="conditional", epochs=2, **SMALL).fit(x, y, xv, y_val=yv)


def test_the_condition_is_inferred_and_stored(fitted, tmp_path, labelled):
    _, _, xv, yv = labelled
    assert (fitted.condition_.kind, fitted.condition_.width) == ("label", 10)
    fitted.save(tmp_path / "m.pt")
    again = load(tmp_path / "m.pt")
    assert isinstance(again, CVAE)
    assert (again.condition_.kind, again.condition_.width) == ("label", 10)
    pyro.set_rng_seed(1)
    a = fitted.evaluate(xv, y=yv)
    pyro.set_rng_seed(1)
    b = again.evaluate(xv, y=yv)
    assert a == pytest.approx(b)


def test_scores_need_the_conditions(fitted, labelled):
    _, _, xv, yv = labelled
    with pytest.raises(ConfigError, match="needs the condition of every row"):
        fitted.evaluate(xv)
    assert np.isfinite(fitted.score(xv, yv))
    ll = fitted.log_likelihood(xv[:5], samples=20, y=yv[:5])
    assert ll.shape == (5,) and torch.isfinite(ll).all()
    # log p(x | c) depends on c
    other = fitted.log_likelihood(xv[:5], samples=20, y=(yv[:5] + 1) % 10)
    assert not torch.allclose(ll, other)


def test_sample_given_a_condition(fitted):
    pyro.set_rng_seed(0)
    s = fitted.sample(6, condition=3)
    assert s.shape == (6, 1, 8, 8)
    assert fitted.sample(3, condition=[0, 1, 2]).shape == (3, 1, 8, 8)
    # the class changes the samples' means (same z draws)
    pyro.set_rng_seed(0)
    t = fitted.sample(6, condition=4)
    assert not torch.allclose(s, t)
    with pytest.raises(DataError, match="samples given a condition"):
        fitted.sample(2)
    with pytest.raises(DataError, match="class 10 is out of range"):
        fitted.sample(2, condition=10)
    with pytest.raises(DataError, match="is a class label"):
        fitted.sample(2, condition=[[0.5, 0.1]])
    with pytest.raises(DataError, match="3 conditions given for 2 samples"):
        fitted.sample(2, condition=[1, 2, 3])


def test_covariates(labelled):
    x, _, xv, _ = labelled
    g = torch.Generator().manual_seed(0)
    c, cv = torch.rand(len(x), 3, generator=g), torch.rand(len(xv), 3, generator=g)
    est = CVAE(epochs=1, **SMALL).fit(x, c, xv, y_val=cv)
    assert (est.condition_.kind, est.condition_.width) == ("covariates", 3)
    assert est.sample(4, condition=[0.1, 0.2, 0.3]).shape == (4, 1, 8, 8)
    assert est.sample(2, condition=cv[:2]).shape == (2, 1, 8, 8)
    with pytest.raises(DataError, match="width 2 but the model's have width 3"):
        est.sample(2, condition=[0.1, 0.2])
    with pytest.raises(DataError, match="width 2 but the model's have width 3"):
        est.evaluate(xv, y=cv[:, :2])


def test_bad_fits(labelled):
    x, y, _, _ = labelled
    with pytest.raises(DataError, match="needs the condition of every training row"):
        CVAE(epochs=1, **SMALL).fit(x)
    with pytest.raises(DataError, match="a single class"):
        CVAE(epochs=1, **SMALL).fit(x, torch.zeros(len(x), dtype=torch.int64))
    with pytest.raises(ConfigError, match="conditional model"):
        VAE(prior="conditional", epochs=1, **SMALL).fit(x)


def test_unconditional_families_refuse_a_condition(labelled):
    x, _, _, _ = labelled
    vae = VAE(epochs=1, **SMALL).fit(x)
    with pytest.raises(ConfigError, match="unconditional"):
        vae.sample(2, condition=3)
    with pytest.raises(ConfigError, match="unconditional"):
        vae.decode(torch.zeros(2, 2), condition=3)


def test_resume_with_the_conditions(labelled, tmp_path):
    x, y, xv, yv = labelled
    CVAE(epochs=1, **SMALL).fit(x, y, xv, y_val=yv, run_dir=tmp_path / "run")
    est = resume(tmp_path / "run", x, xv, epochs=2, y_train=y, y_val=yv)
    assert est.n_epochs_ == 2 and est.condition_.width == 10
    with pytest.raises(DataError, match="class 10 is out of range"):
        resume(tmp_path / "run", x, xv, epochs=3, y_train=y + 1, y_val=yv)


def test_analyze_and_arviz_export(fitted, labelled):
    _, _, xv, yv = labelled
    out = fitted.analyze(xv[:20], samples=10, particles=2, y=yv[:20])
    assert np.isfinite(out["log_likelihood"]) and out["kl_per_dim"] is None
    data = Batch(xv[:5], fitted.module_.targets(yv[:5]))
    idata = to_arviz(fitted.module_, data, draws=7)
    assert idata.posterior["z"].shape == (1, 7, 5, 2)
    assert idata.log_likelihood["x"].shape == (1, 7, 5)
    assert idata.posterior_predictive["x"].shape == (1, 7, 5, 64)


def test_what_the_cvae_does_not_take_is_refused_with_one_line(fitted, labelled):
    """A Bayesian decoder and a decoder prior (``prior_module``) need a decoder that reads
    z alone, and the completion API the rows' conditions: one-line refusals."""
    from pyrovae.api import prior_module

    x, y, _, _ = labelled
    refusals = [
        (
            lambda: CVAE(bayesian_decoder=True, epochs=1, **SMALL).fit(x[:64], y[:64]),
            "bayesian_decoder is available for the vae and hvae families, not cvae",
        ),
        (lambda: prior_module(fitted, "f"), "prior_module needs an unconditional family"),
        (lambda: fitted.condition(x[:2]), "needs the condition of every row"),
        (lambda: fitted.condition(x[:2], y=y[:3]), "y has 3 entries but the data has 2 rows"),
    ]
    for call, message in refusals:
        with pytest.raises((ConfigError, DataError), match=message) as info:
            call()
        assert "\n" not in str(info.value)


def test_condition_samples_the_posterior_given_the_rows_conditions(fitted, labelled):
    """Completion of a CVAE's rows given their conditions c: with every entry observed
    the guide method returns exactly the guide's draws q(z | x, c) (same seed); the
    completed entries are the decoder's p(x | z, c) averaged over those draws; another
    condition gives another completion; SVI and NUTS run on the same rows."""
    from pyrovae import sites

    x, y, _, _ = labelled
    module = fitted.module_
    rows, labels = x[:3], y[:3]
    targets = module.targets(labels)
    everything = torch.ones_like(rows, dtype=torch.bool)
    comp = fitted.condition(rows, mask=everything, draws=9, y=labels, seed=4)
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(4)
        want = module.posterior_sample(Batch(rows, targets, everything), 9, mask=everything)
    torch.testing.assert_close(comp.z[sites.LATENT], want[sites.LATENT], rtol=0, atol=0)
    # one class serves every row, as for sampling
    same = fitted.condition(rows, mask=everything, draws=9, y=int(labels[0]), seed=4)
    every = fitted.condition(rows, mask=everything, draws=9, y=[int(labels[0])] * 3, seed=4)
    torch.testing.assert_close(same.z[sites.LATENT], every.z[sites.LATENT], rtol=0, atol=0)
    mask = torch.ones_like(rows, dtype=torch.bool)
    mask.view(3, -1)[:, :32] = False  # the top half of every image missing
    comp = fitted.condition(rows, mask=mask, method="svi", draws=50, y=labels, steps=20)
    with torch.no_grad():
        px = module.decode_rows(comp.z[sites.LATENT], Batch(rows, targets))
    torch.testing.assert_close(comp.mean[~mask], px.mean.mean(0)[~mask])
    torch.testing.assert_close(comp.mean[mask], rows[mask])
    other = fitted.condition(rows, mask=mask, method="svi", draws=50, y=(labels + 1) % 10, steps=20)
    assert not torch.allclose(other.mean[~mask], comp.mean[~mask])
    nuts = fitted.condition(
        rows[:1], mask=mask[:1], method="nuts", draws=6, warmup=6, chains=1, y=labels[:1]
    )
    assert nuts.x.shape == (6, 1, *rows.shape[1:]) and torch.isfinite(nuts.mean).all()
    with pytest.warns(UserWarning, match="not trained with observation masks"):
        ll = fitted.condition(rows, mask=mask, draws=5, y=labels, x_true=rows).log_lik
    assert ll.shape == (3,) and torch.isfinite(ll).all()
