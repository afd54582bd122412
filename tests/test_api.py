"""The scikit-learn-style estimators."""

from __future__ import annotations

import re

import pyro
import pyro.distributions as dist
import pytest
import torch

from pyrovae.api import AE, DAE, ESTIMATORS, VAE, load
from pyrovae.errors import CheckpointError, ConfigError, DataError
from pyrovae.likelihoods import GaussianLikelihood
from pyrovae.priors import Prior

SMALL = dict(hidden=(32,), latent_dim=2, batch_size=64, epochs=2)


@pytest.fixture(scope="module")
def fitted(small_digits):
    x, xv = small_digits
    return VAE(**SMALL).fit(x, X_val=xv)


def test_init_stores_params_only():
    vae = VAE(latent_dim=5, beta=4.0)
    assert vae.get_params()["latent_dim"] == 5 and vae.get_params()["beta"] == 4.0
    assert not [a for a in vars(vae) if a.endswith("_")]
    assert repr(vae) == "VAE(latent_dim=5, beta=4.0)"
    assert vae.set_params(latent_dim=3) is vae and vae.latent_dim == 3
    with pytest.raises(ConfigError, match="no parameter 'latentdim'"):
        vae.set_params(latentdim=3)


def test_fitted_attributes(fitted):
    for attr in (
        "module_",
        "history_",
        "n_epochs_",
        "best_epoch_",
        "likelihood_",
        "data_shape_",
        "n_features_in_",
        "fit_time_",
    ):
        assert hasattr(fitted, attr), attr
    assert fitted.data_shape_ == (1, 8, 8) and fitted.n_features_in_ == 64
    assert fitted.likelihood_ == "bernoulli"


def test_unfitted_use_is_an_error():
    with pytest.raises(ConfigError, match="not fitted"):
        VAE().encode(torch.rand(2, 64))


def test_inference_methods(fitted, digits):
    x = digits.test[:5]
    q = fitted.encode(x)
    assert isinstance(q, dist.Distribution)
    assert q.mean.shape == (5, 2) and (q.stddev > 0).all()
    px = fitted.decode(q.mean)
    assert px.mean.shape == (5, 1, 8, 8)
    rec = fitted.reconstruct(x)
    assert rec.shape == (5, 1, 8, 8) and ((rec >= 0) & (rec <= 1)).all()
    assert fitted.sample(7).shape == (7, 1, 8, 8)
    draws = fitted.sample(7, mean=False)
    assert set(draws.unique().tolist()) <= {0.0, 1.0}
    elbo = fitted.elbo(x, particles=4)
    assert elbo.shape == (5,) and (elbo < 0).all()
    ev = fitted.evaluate(x)
    assert ev["elbo"] == pytest.approx(ev["recon"] - ev["kl"], abs=1e-4)
    pyro.set_rng_seed(11)
    score = fitted.score(x)
    pyro.set_rng_seed(11)  # the same draws: the same number
    assert score == fitted.evaluate(x)["elbo"]
    # flattened rows are accepted and reshaped
    assert fitted.encode(x.reshape(5, 64)).mean.shape == (5, 2)


def test_numpy_input_and_gaussian_default(tabular):
    vae = VAE(**SMALL).fit(tabular.numpy())
    assert vae.likelihood_ == "gaussian" and vae.data_shape_ == (5,)
    assert vae.reconstruct(tabular[:3].numpy()).shape == (3, 5)


class ShiftedPrior(Prior):
    """A user's own prior object: N(shift, I) with a learnable shift."""

    def __init__(self, latent_dim):
        super().__init__(latent_dim)
        self.shift = torch.nn.Parameter(torch.full((latent_dim,), 0.5))

    def forward(self):
        return dist.Normal(self.shift, torch.ones(self.latent_dim)).to_event(1)


def test_components_as_objects(small_digits, tmp_path):
    x, xv = small_digits
    vae = VAE(prior=ShiftedPrior(2), **SMALL).fit(x, X_val=xv)
    assert isinstance(vae.module_.prior, ShiftedPrior)
    assert not torch.equal(vae.module_.prior.shift.detach(), torch.full((2,), 0.5))  # learned
    vae.save(tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="custom prior object"):
        load(tmp_path / "m.pt")
    again = VAE.load(tmp_path / "m.pt", prior=ShiftedPrior(2))
    torch.testing.assert_close(again.module_.prior.shift, vae.module_.prior.shift)
    lik = GaussianLikelihood((1, 8, 8), scale=0.2)
    vae2 = VAE(likelihood=lik, **SMALL).fit(x)
    assert vae2.module_.likelihood is lik


def test_mismatched_latent_sizes_rejected(small_digits):
    x, _ = small_digits
    with pytest.raises(ConfigError, match="latent size 3 but the model's latent_dim is 2"):
        VAE(prior=ShiftedPrior(3), **SMALL).fit(x)


def test_load_checks_family(fitted, tmp_path):
    fitted.save(tmp_path / "v.pt")
    assert isinstance(load(tmp_path / "v.pt"), VAE)
    with pytest.raises(CheckpointError, match="holds a 'vae' model"):
        AE.load(tmp_path / "v.pt")


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(epochs=0), "epochs must be a positive integer; got 0"),
        (dict(batch_size=-1), "batch_size must be a positive integer; got -1"),
        (dict(latent_dim=1.5), "latent_dim must be a positive integer; got 1.5"),
        (dict(learning_rate=0), "learning_rate must be > 0; got 0"),
        (dict(patience=-1), "patience must be an integer >= 0; got -1"),
        (dict(particles=0), "particles must be a positive integer; got 0"),
    ],
)
def test_bad_hyperparameters(bad, message, small_digits):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        VAE(**{**SMALL, **bad}).fit(small_digits[0])


def test_estimators_registry_covers_families():
    from pyrovae.config import defaults

    assert {"ae", "dae", "vae"} <= set(ESTIMATORS.names())
    keys = set(defaults())
    for _, cls in ESTIMATORS.items():  # every estimator parameter is a config option
        assert set(cls._param_names()) - {"progress"} <= keys


def test_autoencoders_sample_from_fitted_code_distribution(small_digits):
    x, xv = small_digits
    ae = DAE(noise=0.3, corruption="gaussian", **SMALL).fit(x, X_val=xv)
    codes = ae.encode(x).mean
    torch.testing.assert_close(ae.module_.code_loc, codes.mean(0), rtol=1e-4, atol=1e-4)
    assert ae.sample(4).shape == (4, 1, 8, 8)
    assert (ae.encode(x[:3]).variance == 0).all()


@pytest.mark.parametrize("prior", ["learned", "mog"])
def test_nothing_enters_pyros_global_param_store(prior, small_digits):
    import pyro

    pyro.clear_param_store()
    vae = VAE(prior=prior, **SMALL).fit(small_digits[0])
    assert list(pyro.get_param_store().keys()) == []
    assert any(p.grad is not None for p in vae.module_.prior.parameters())  # and it learns


# -- the posterior analyses of a fitted VAE ------------------------------------------------


def _same(a, b) -> None:
    """Equal nested results (dicts, lists, tensors, arrays, numbers)."""
    import numpy as np

    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b or (a != a and b != b)  # NaN == NaN here


def test_analyze_is_the_elbo_decomposition_of_the_validated_input(fitted, digits):
    from pyrovae.analysis import elbo_decomposition

    x = digits.test[:12]
    pyro.set_rng_seed(3)
    out = fitted.analyze(x.reshape(12, 64), samples=20, particles=3)  # flat rows reshaped
    pyro.set_rng_seed(3)
    _same(out, elbo_decomposition(fitted.module_, x, samples=20, particles=3))
    assert out["samples"] == 20 and out["particles"] == 3 and out["n"] == 12
    with pytest.raises(DataError, match="outside"):  # Bernoulli data must be in [0, 1]
        fitted.analyze(x + 2.0, samples=5)
    with pytest.raises(ConfigError, match="not fitted"):
        VAE().analyze(x)


def test_refine_runs_nuts_with_the_estimators_seed(small_digits):
    from pyrovae.inference.mcmc import refine

    x, _ = small_digits
    vae = VAE(seed=5, **SMALL).fit(x)
    kw = dict(num_samples=8, warmup=8, chains=2)
    out = vae.refine(x[:2].reshape(2, 64), **kw)
    _same(out, refine(vae.module_, x[:2], 8, 8, 2, seed=5))
    other = refine(vae.module_, x[:2], 8, 8, 2, seed=6)
    assert not torch.equal(out["draws"], other["draws"])
    assert out["draws"].shape == (2, 8, 2, 2)
    with pytest.raises(DataError, match="outside"):
        vae.refine(x[:2] - 1.0, **kw)


def test_calibrate_runs_sbc_with_the_estimators_seed(small_digits):
    import numpy as np

    from pyrovae.inference.calibration import sbc

    x, _ = small_digits
    vae = VAE(seed=5, **SMALL).fit(x)
    out = vae.calibrate(n=40, draws=9)
    _same(out, sbc(vae.module_, n=40, draws=9, seed=5))
    assert out["ranks"].shape == (40, 2) and out["n"] == 40 and out["draws"] == 9
    assert not np.array_equal(out["ranks"], sbc(vae.module_, n=40, draws=9, seed=6)["ranks"])
    with pytest.raises(ConfigError, match="not fitted"):
        VAE().calibrate()


def test_reconstruct_with_a_posterior_draw(fitted, digits):
    x = digits.test[:6]
    pyro.set_rng_seed(4)
    drawn = fitted.reconstruct(x, sample=True)
    pyro.set_rng_seed(4)
    z = fitted.encode(x).sample()
    assert torch.equal(drawn, fitted.decode(z).mean)
    assert not torch.equal(drawn, fitted.reconstruct(x))  # not the posterior mean's
    torch.testing.assert_close(
        fitted.reconstruct(x), fitted.decode(fitted.encode(x).mean).mean, rtol=0, atol=0
    )


def test_refitting_starts_afresh(small_digits, tabular):
    x, xv = small_digits
    vae = VAE(**SMALL).fit(x, X_val=xv)
    vae.fit(tabular)  # other data, other shape, no validation data
    fresh = VAE(**SMALL).fit(tabular)
    assert vae.data_shape_ == (5,) and vae.likelihood_ == "gaussian"
    assert len(vae.history_) == SMALL["epochs"] and vae.history_[0]["epoch"] == 1
    assert all(r["val_loss"] != r["val_loss"] for r in vae.history_)  # NaN: no X_val
    for (name, a), b in zip(
        vae.module_.state_dict().items(), fresh.module_.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    # refitting on the first data again reproduces the first fit
    again = VAE(**SMALL).fit(x, X_val=xv)
    vae.fit(x, X_val=xv)
    assert vae.history_ == [
        {**r, "seconds": s["seconds"], "cpu_seconds": s["cpu_seconds"]}
        for r, s in zip(again.history_, vae.history_, strict=True)
    ]


@pytest.mark.parametrize("cls", [AE, DAE])
def test_score_of_autoencoders_is_the_reconstruction_log_likelihood(cls, small_digits, digits):
    """log p(x | decoder(code(x))) by hand (Bernoulli), on clean inputs (no corruption
    outside training), the same on every call."""
    from torch.nn import functional as F

    x, xv = small_digits
    ae = cls(noise=0.5, **SMALL) if cls is DAE else cls(**SMALL)
    ae.fit(x, X_val=xv)
    xt = digits.test[:20]
    m = ae.module_
    with torch.no_grad():
        m.eval()
        logits = m.decoder(m.code(m.encoder(xt)))[:, 0]  # one parameter channel
        by_hand = -F.binary_cross_entropy_with_logits(logits, xt, reduction="none")
    expected = float(by_hand.flatten(1).sum(1).mean())
    score = ae.score(xt)
    assert score == pytest.approx(expected, rel=1e-6)
    assert ae.score(xt) == score
    ev = ae.evaluate(xt)
    assert ev["recon"] == score and ev["kl"] == 0 and ev["elbo"] != ev["elbo"]  # NaN


def test_dae_corrupts_the_encoders_input_in_training_only(small_digits):
    """noise = 1 with masking zeroes every input: the encoder sees zeros in every
    training step and the clean data in validation and after fitting."""
    x, xv = small_digits
    dae = DAE(noise=1.0, corruption="mask", **SMALL)
    dae.check_params()
    pyro.set_rng_seed(0)
    dae.build(tuple(x.shape[1:]), "bernoulli")
    seen = []
    dae.module_.encoder.register_forward_pre_hook(
        lambda mod, args: seen.append((mod.training, args[0].detach().clone()))
    )
    dae.fit_with(dae.make_trainer(None, None), x, xv)
    training = [inp for is_training, inp in seen if is_training]
    evaluation = [inp for is_training, inp in seen if not is_training]
    assert len(training) == SMALL["epochs"] * 5  # 300 rows in minibatches of 64
    assert all(not inp.any() for inp in training)
    # each epoch's validation pass, then the codes of the training data after fitting
    assert torch.equal(torch.cat(evaluation[: SMALL["epochs"]]), xv.repeat(2, 1, 1, 1))
    assert torch.equal(evaluation[SMALL["epochs"]], x)
    seen.clear()
    dae.score(xv)
    assert len(seen) == 1 and not seen[0][0] and torch.equal(seen[0][1], xv)


# -- resume refuses what it cannot continue ------------------------------------------------


def _bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_resume_refusals(small_digits, tmp_path):
    from pyrovae.api import resume

    x, xv = small_digits
    VAE(**SMALL).fit(x, X_val=xv, run_dir=tmp_path / "run")
    before = _bytes(tmp_path / "run")
    run = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"^the run is finished \(2 of 2 epochs\); pass a"):
        resume(run, x, xv)
    for epochs in (1, 2):
        with pytest.raises(ConfigError, match="^the run has already trained 2 epochs; pass"):
            resume(run, x, xv, epochs=epochs)
    with pytest.raises(ConfigError, match="^resume cannot change latent_dim, seed; only device"):
        resume(run, x, xv, epochs=3, latent_dim=3, seed=1)
    assert _bytes(run) == before  # nothing was written


def test_resume_refuses_a_run_that_stopped_early(small_digits, tmp_path):
    from pyrovae.api import resume

    x, xv = small_digits
    vae = VAE(**{**SMALL, "epochs": 50}, patience=1, learning_rate=1e-7)
    vae.fit(x, X_val=xv, run_dir=tmp_path)
    assert vae.stopped_early_
    done = vae.n_epochs_
    with pytest.raises(ConfigError, match=rf"finished \({done} of 50 epochs, stopped early\)"):
        resume(tmp_path, x, xv)


def test_resume_needs_training_state(fitted, small_digits, tmp_path):
    from pyrovae.api import resume

    x, xv = small_digits
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        resume(tmp_path / "empty", x, xv, epochs=5)
    # a model written by save() after load() carries weights but no trainer state
    fitted.save(tmp_path / "m.pt")
    (tmp_path / "weights").mkdir()
    load(tmp_path / "m.pt").save(tmp_path / "weights" / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="holds no training state to resume"):
        resume(tmp_path / "weights", x, xv, epochs=5)
