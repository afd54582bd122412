"""Bayesian decoder weights: the weight sites, their KL, their scaling against
minibatches, and the reduction to the point decoder."""

from __future__ import annotations

import contextlib
import math

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import TraceMeanField_ELBO

from pyrovae import sites
from pyrovae.data import Batch, TensorBatches
from pyrovae.errors import ConfigError
from pyrovae.models import MODELS, ModuleSpec, build_module
from pyrovae.models.bayesian import WEIGHT_POSTERIORS, DecoderWeights, select_parameters
from pyrovae.nets import DECODERS
from pyrovae.objectives import OBJECTIVES

#: Model options some families need (the m2 family's label classes).
FAMILY_OPTIONS = {"m2": {"n_classes": 3}}


def _takes_weights(family: str) -> bool:
    """Whether ``family`` builds with a Bayesian decoder; a family that does not must
    refuse with one line (checked by ``test_other_families_refuse_a_bayesian_decoder``)."""
    spec = ModuleSpec(
        data_shape=(6,),
        decoder_weights={"layers": "all"},
        model_options=FAMILY_OPTIONS.get(family, {}),
    )
    try:
        build_module(family, spec)
    except ConfigError:
        return False
    return True


#: Families that take a Bayesian decoder (those with latent variables and a decoder
#: that reads z alone); the others refuse it.
FAMILIES = [name for name in MODELS.names() if _takes_weights(name)]
REFUSING = [name for name in MODELS.names() if name not in FAMILIES]
#: Objectives that score global sites.
GLOBAL_OBJECTIVES = [n for n in OBJECTIVES.names() if OBJECTIVES.get(n).global_sites]


#: Every registered family of weight posteriors.
POSTERIORS = WEIGHT_POSTERIORS.names()


def _spec(layers="all", prior_scale=1.0, init_scale=1e-3, net="mlp", posterior="meanfield", **kw):
    return ModuleSpec(
        data_shape=(6,),
        latent_dim=2,
        net=net,
        hidden=(5,),
        decoder_weights={
            "layers": layers,
            "prior_scale": prior_scale,
            "init_scale": init_scale,
            "posterior": posterior,
        },
        **kw,
    )


def _data(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 6, generator=g) < 0.4).float()


@pytest.mark.parametrize("posterior", POSTERIORS)
@pytest.mark.parametrize("family", FAMILIES)
def test_weight_sites_are_global_and_scaled_by_b_over_n(family, posterior):
    torch.manual_seed(0)
    module = build_module(family, _spec(posterior=posterior))
    batch = Batch(_data(8), n=40)
    tr = poutine.trace(module.guide).get_trace(batch)
    names = [n for n in tr.nodes if sites.is_decoder_weight(n)]
    assert names == list(module.decoder_weights.site_names().values())
    for n in names:
        site = tr.nodes[n]
        assert all(f.name != sites.DATA_PLATE for f in site["cond_indep_stack"])
        assert site["scale"] == pytest.approx(8 / 40)


def test_beta_scales_the_weight_sites_only_with_beta_weights():
    torch.manual_seed(0)
    batch = Batch(_data(8), n=40)
    for beta_weights, expected in ((False, 0.2), (True, 0.2 * 0.3)):
        spec = _spec()
        spec.decoder_weights["beta_weights"] = beta_weights
        module = build_module("vae", spec)
        tr = poutine.trace(module.model).get_trace(batch, beta=0.3)
        site = tr.nodes[sites.decoder_weight(module.decoder_weights.names[0])]
        assert site["scale"] == pytest.approx(expected)
        assert tr.nodes[sites.LATENT]["scale"] == pytest.approx(0.3)


@pytest.mark.parametrize("net", DECODERS.names())
@pytest.mark.parametrize("layers", ["all", "last"])
def test_layers_select_every_or_the_output_layers_parameters(net, layers):
    cls = DECODERS.get(net)
    data_shape, options = (1, 8, 8) if net == "conv" else (6,), {}
    if not getattr(cls, "any_data_shape", True):  # a decoder of its own grid only
        data_shape, options = cls.example()
    decoder = cls(2, data_shape, 1, hidden=(5,), **options)
    names = select_parameters(decoder, layers)
    every = [n for n, _ in decoder.named_parameters()]
    if layers == "all":
        assert names == every
    else:
        # the output layer: the parameters producing the decoder's last output
        assert set(names) == set(every[-2:]) and names
        assert all(n.endswith(("weight", "bias")) for n in names)


def test_weight_kl_equals_its_closed_form():
    torch.manual_seed(0)
    module = build_module("vae", _spec(prior_scale=0.7, init_scale=0.05))
    dw = module.decoder_weights
    with torch.no_grad():
        for p in dw.raw_scale.values():
            p.uniform_(-0.4, 0)
    s = 0.7
    expected = 0.0
    with torch.no_grad():
        kl = float(dw.kl())
    for n, mu in dw.locs().items():
        sd = dw.scales()[n]
        expected += (torch.log(s / sd) + (sd**2 + mu**2) / (2 * s**2) - 0.5).sum()
    assert kl == pytest.approx(float(expected.detach()), rel=1e-5)


def test_rank1_weight_kl_equals_its_closed_form():
    """KL(N(μ, σ²) || N(1, s²)) summed over the factors r and s of every matrix."""
    torch.manual_seed(0)
    module = build_module("vae", _spec(prior_scale=0.7, init_scale=0.05, posterior="rank1"))
    dw = module.decoder_weights
    with torch.no_grad():
        for p in dw.raw_scale.values():
            p.uniform_(-0.4, 0)
        for p in dw.factor_loc.values():
            p.uniform_(0.5, 1.5)
        kl = float(dw.kl())
        expected = 0.0
        for n, mu in dw.locs().items():
            sd = dw.scales()[n]
            expected += float(
                (torch.log(0.7 / sd) + (sd**2 + (mu - 1) ** 2) / (2 * 0.7**2) - 0.5).sum()
            )
    assert kl == pytest.approx(expected, rel=1e-5)
    # out + in random scalars per matrix
    sizes = [p.shape for p in module.decoder.parameters() if p.dim() >= 2 and p.numel()]
    assert dw.num_random() == sum(a + b for a, b, *_ in sizes)


@pytest.mark.parametrize("net", DECODERS.names())
def test_rank1_draws_compose_the_point_weights_with_the_factors(net):
    """θ = W̄ ∘ (r sᵀ) for every matrix at the guide's draws of r and s (biases stay the
    decoder's); the posterior mean decodes with W̄ ∘ (E[r] E[s]ᵀ); every decoder."""
    cls = DECODERS.get(net)
    data_shape, options = ((1, 8, 8) if net == "conv" else (6,)), {}
    if not getattr(cls, "any_data_shape", True):
        data_shape, options = cls.example()
    spec = ModuleSpec(
        data_shape=data_shape,
        latent_dim=2,
        net=net,
        hidden=(5,),
        net_options=options,
        decoder_weights={"posterior": "rank1", "init_scale": 0.3},
    )
    torch.manual_seed(0)
    module = build_module("vae", spec)
    dw = module.decoder_weights
    params = dict(module.decoder.named_parameters())
    batch = Batch(torch.rand(3, *data_shape).round(), n=3)
    with torch.no_grad():
        for p in dw.factor_loc.values():
            p.uniform_(0.5, 1.5)
        tr = poutine.trace(module.guide).get_trace(batch)
        values = {f: tr.nodes[site]["value"] for f, site in dw.site_names().items()}
        theta = dw.compose(values)
        assert set(theta) == set(dw.names) and all(params[n].dim() >= 2 for n in theta)
        assert dw.names == [n for n, p in params.items() if p.dim() >= 2 and p.numel()]
        for n, w in theta.items():
            r, s = values[f"{n}.r"], values[f"{n}.s"]
            for i, j in ((0, 0), (r.numel() - 1, s.numel() - 1)):
                torch.testing.assert_close(w[i, j], params[n][i, j] * r[i] * s[j])
        z = torch.randn(4, module.code_dim)
        mean = {
            n: params[n]
            * torch.outer(dw.locs()[f"{n}.r"], dw.locs()[f"{n}.s"]).reshape(
                params[n].shape[:2] + (1,) * (params[n].dim() - 2)
            )
            for n in dw.names
        }
        want = torch.func.functional_call(module.decoder, mean, (z,), strict=False)
        torch.testing.assert_close(dw(z), want)


def test_rank1_noise_holds_the_factor_means_at_one():
    """rank1-noise: the factor means are the constant 1 (no parameter, no gradient), the
    KL is Σ log(s/σ) + σ²/(2s²) − 1/2 over the factors, and the mean decoder is the
    plain decoder."""
    torch.manual_seed(0)
    module = build_module("vae", _spec(prior_scale=0.7, init_scale=0.05, posterior="rank1-noise"))
    dw = module.decoder_weights
    names = [n for n, _ in dw.named_parameters()]
    assert names and all(n.startswith("raw_scale.") for n in names)
    with torch.no_grad():
        for p in dw.raw_scale.values():
            p.uniform_(-0.4, 0)
        assert all(torch.equal(v, torch.ones_like(v)) for v in dw.locs().values())
        expected = sum(
            float((torch.log(0.7 / sd) + sd**2 / (2 * 0.7**2) - 0.5).sum())
            for sd in dw.scales().values()
        )
        assert float(dw.kl()) == pytest.approx(expected, rel=1e-5)
        z = torch.randn(4, 2)
        torch.testing.assert_close(dw(z), module.decoder(z))
    batch = Batch(_data(8), n=8)
    loss = pyro.infer.Trace_ELBO().differentiable_loss(module.model, module.guide, batch)
    loss.backward()
    assert all(p.grad is not None for p in dw.raw_scale.values())


def _mixture(**kw):
    torch.manual_seed(0)
    module = build_module("vae", _spec(posterior="rank1-mixture", **kw))
    return module, module.decoder_weights


def test_mixture_weight_kl_is_the_average_of_its_components_closed_forms():
    """(1/K) Σ_k KL(N(μ_k, σ_k²) || N(1, s²)) over the factors of every matrix."""
    module, dw = _mixture(prior_scale=0.7, init_scale=0.05)
    with torch.no_grad():
        for p in dw.raw_scale.values():
            p.uniform_(-0.4, 0)
        kl = float(dw.kl())
        per = []
        for k in range(dw.components):
            total = 0.0
            for key, loc in dw.factor_loc.items():
                mu = loc[k]
                sd = torch.nn.functional.softplus(10.0 * dw.raw_scale[key][k]) + 1e-8
                total += float(
                    (torch.log(0.7 / sd) + (sd**2 + (mu - 1) ** 2) / (2 * 0.7**2) - 0.5).sum()
                )
            per.append(total)
    assert dw.components == 4 and len(set(per)) == 4  # the components differ
    assert kl == pytest.approx(sum(per) / 4, rel=1e-5)


def test_mixture_guide_draws_its_component_uniformly_and_replays_it():
    """The guide records k (log-density 0); a replayed guide uses the same k and scores
    the same log q_k(θ); over many runs each component is drawn about 1/K of the time."""
    module, dw = _mixture(init_scale=0.1)
    batch = Batch(_data(4), n=4)
    counts = torch.zeros(dw.components)
    with torch.no_grad():
        for _ in range(400):
            g = poutine.trace(module.guide).get_trace(batch)
            k = int(g.nodes[sites.WEIGHT_COMPONENT]["value"])
            counts[k] += 1
            r = poutine.trace(poutine.replay(module.guide, trace=g)).get_trace(batch)
            assert int(r.nodes[sites.WEIGHT_COMPONENT]["value"]) == k
            g.compute_log_prob()
            r.compute_log_prob()
            assert float(g.nodes[sites.WEIGHT_COMPONENT]["log_prob_sum"]) == 0.0
            for n in dw.site_names().values():
                assert torch.equal(g.nodes[n]["log_prob_sum"], r.nodes[n]["log_prob_sum"])
            if counts.sum() == 1:  # the guide's sites are those of component k
                with dw.component(k):
                    want = dw.guide_distributions()
                for f, n in dw.site_names().items():
                    assert torch.equal(g.nodes[n]["fn"].base_dist.loc, want[f].base_dist.loc)
    # binomial(400, 1/4): mean 100, sd 8.7
    assert ((counts - 100).abs() < 4 * 8.7).all()
    model = poutine.trace(module.model).get_trace(batch)
    assert sites.WEIGHT_COMPONENT not in model.nodes


def test_mixture_mean_weights_average_the_components():
    """E[W] = W̄ ∘ (1/K) Σ_k E[r_k] E[s_k]ᵀ, and a draw composes one component's factors."""
    module, dw = _mixture(init_scale=0.1)
    params = dict(module.decoder.named_parameters())
    with torch.no_grad():
        mean = dw.mean_parameters()
        for n in dw.names:
            want = 0.0
            for k in range(dw.components):
                with dw.component(k):
                    locs = dw.locs()
                want = want + params[n] * torch.outer(locs[f"{n}.r"], locs[f"{n}.s"])
            want = want / dw.components
            torch.testing.assert_close(mean[n], want)
        torch.manual_seed(5)
        theta = dw.draw()
        torch.manual_seed(5)
        k = int(torch.randint(dw.components, ()))
        with dw.component(k):
            values = {f: q.sample() for f, q in dw.guide_distributions().items()}
        for n, w in dw.compose(values).items():
            torch.testing.assert_close(theta[n], w)


@pytest.mark.parametrize("posterior", POSTERIORS)
def test_monte_carlo_weight_kl_of_the_traces_matches_the_closed_form(posterior):
    """The trace objective's weight term log q(θ) - log p(θ) at a draw averages to the
    closed-form KL, within 4 standard errors of the draws."""
    torch.manual_seed(1)
    module = build_module("vae", _spec(prior_scale=0.5, init_scale=0.2, posterior=posterior))
    batch = Batch(_data(4), n=4)
    values = []
    with torch.no_grad():
        for _ in range(400):
            g = poutine.trace(module.guide).get_trace(batch)
            m = poutine.trace(poutine.replay(module.model, trace=g)).get_trace(batch)
            total = 0.0
            for n in g.nodes:
                if sites.is_decoder_weight(n):
                    total += float(g.nodes[n]["fn"].log_prob(g.nodes[n]["value"]))
                    total -= float(m.nodes[n]["fn"].log_prob(g.nodes[n]["value"]))
            values.append(total)
        kl = float(module.decoder_weights.kl())
    v = torch.tensor(values, dtype=torch.float64)
    se = float(v.std() / math.sqrt(v.numel()))
    assert abs(float(v.mean()) - kl) < 4 * se


@pytest.mark.parametrize("posterior", POSTERIORS)
@pytest.mark.parametrize("family", FAMILIES)
def test_concentrated_weight_guide_reduces_to_the_point_decoder(family, posterior):
    """With q(θ) concentrated at the decoder weights θ0 of its mean (σ -> 0; for a
    mixture, of the component the guide drew), the ELBO less its weight term
    (B/N) KL(q(θ) || p(θ)) is the ELBO of the point decoder with weights θ0, at the same
    z; the parameters the point decoder shares with the Bayesian one are its own."""
    torch.manual_seed(0)
    bayes = build_module(family, _spec(init_scale=1e-7, posterior=posterior))
    point_spec = _spec()
    point_spec.decoder_weights = {}
    point = build_module(family, point_spec)
    missing = point.load_state_dict(bayes.state_dict(), strict=False)
    assert all(k.startswith("decoder_weights.") for k in missing.unexpected_keys)
    assert not missing.missing_keys
    batch = Batch(_data(8), n=32)
    elbo = TraceMeanField_ELBO() if bayes.mean_field else pyro.infer.Trace_ELBO()
    dw = bayes.decoder_weights
    with torch.no_grad():
        g = poutine.trace(bayes.guide).get_trace(batch)
        drawn = {f: g.nodes[site]["value"] for f, site in dw.site_names().items()}
        with (
            dw.component(g.nodes[sites.WEIGHT_COMPONENT]["value"])
            if (sites.WEIGHT_COMPONENT in g.nodes)
            else contextlib.nullcontext()
        ):
            theta0 = dw.compose(dw.locs())
        params = dict(point.decoder.named_parameters())
        for n, w in theta0.items():
            params[n].copy_(w)
        loss_bayes = elbo.differentiable_loss(
            bayes.model, poutine.replay(bayes.guide, trace=g), batch
        )
        loss_point = elbo.differentiable_loss(
            point.model, poutine.replay(point.guide, trace=g), batch
        )
        m = poutine.trace(poutine.replay(bayes.model, trace=g)).get_trace(batch)
        weights = [n for n in g.nodes if sites.is_decoder_weight(n)]
        if bayes.mean_field:  # the closed-form KL of the drawn guide's sites
            weight_term = sum(
                float(torch.distributions.kl_divergence(g.nodes[n]["fn"], m.nodes[n]["fn"]))
                for n in weights
            )
        else:  # the Monte Carlo weight term of the trace ELBO at the draw
            weight_term = sum(
                float(g.nodes[n]["fn"].log_prob(g.nodes[n]["value"]))
                - float(m.nodes[n]["fn"].log_prob(g.nodes[n]["value"]))
                for n in weights
            )
        weight_term *= batch.global_scale
        assert drawn.keys() == set(dw.site_names())
    # σ = 1e-7 moves each of ~100 weights by ~1e-7: the data term moves by far less than 1e-3
    assert float(loss_bayes) - weight_term == pytest.approx(float(loss_point), abs=1e-3)


@pytest.mark.parametrize("posterior", POSTERIORS)
@pytest.mark.parametrize("objective", GLOBAL_OBJECTIVES)
@pytest.mark.parametrize("family", FAMILIES)
def test_minibatch_loss_is_unbiased_for_the_full_data_objective(family, objective, posterior):
    """The mean over an epoch's minibatches of loss / B estimates the full-batch loss / N
    (the full-data ELBO, weight KL counted once, per data point), to 4 standard errors
    over repeated epochs; counting the weight KL once per minibatch would be off by
    (M - 1) KL / N, many standard errors here."""
    torch.manual_seed(0)
    module = build_module(family, _spec(init_scale=0.05, posterior=posterior))
    x = _data(48)
    obj = OBJECTIVES.get(objective)()
    epochs, full = [], []
    with torch.no_grad(), pyro.validation_enabled(False):
        for _ in range(150):
            losses = [
                float(obj(module.model, module.guide, b).loss) / len(b)
                for b in TensorBatches(x, 12)
            ]
            epochs.append(sum(losses) / len(losses))
            full.append(float(obj(module.model, module.guide, Batch(x)).loss) / len(x))
    a, b = torch.tensor(epochs, dtype=torch.float64), torch.tensor(full, dtype=torch.float64)
    se = math.sqrt(float(a.var() / a.numel() + b.var() / b.numel()))
    assert abs(float(a.mean() - b.mean())) < 4 * se
    per_batch_bias = 3 * float(module.decoder_weights.kl().detach()) / len(x)
    assert per_batch_bias > 8 * se  # the test would see a wrong scaling


@pytest.mark.parametrize(
    "objective", [n for n in GLOBAL_OBJECTIVES if OBJECTIVES.get(n).analytic_kl]
)
def test_kl_terms_carry_the_weight_kl_share_per_data_point(objective):
    torch.manual_seed(0)
    module = build_module("vae", _spec(init_scale=0.05))
    point = build_module("vae", ModuleSpec(data_shape=(6,), latent_dim=2, hidden=(5,)))
    point.load_state_dict(module.state_dict(), strict=False)
    batch = Batch(_data(8), n=40)
    obj = OBJECTIVES.get(objective)()
    with torch.no_grad():
        with module.decoder_weights.fixed():
            no_weights = obj(module.model, module.guide, batch).kl
        terms = obj(module.model, module.guide, batch)
    share = float(module.decoder_weights.kl().detach()) / 40
    assert torch.allclose(terms.kl - no_weights, torch.full((8,), share), rtol=1e-4)


@pytest.mark.parametrize("posterior", POSTERIORS)
def test_fixed_weights_leave_the_sites_out_and_decode_at_theta(posterior):
    torch.manual_seed(0)
    module = build_module("vae", _spec(init_scale=0.1, posterior=posterior))
    dw = module.decoder_weights
    theta = dw.draw()
    z = torch.randn(3, 2)
    with dw.fixed(theta):
        tr = poutine.trace(module.model).get_trace(_data(3))
        assert not any(sites.is_decoder_weight(n) for n in tr.nodes)
        got = module.decode(z).mean
    want = torch.func.functional_call(module.decoder, theta, (z,))
    assert torch.allclose(got, module.likelihood(want).mean)
    # outside the programs the decoder runs at the posterior mean of the weights
    at_mean = torch.func.functional_call(module.decoder, dw.mean_parameters() or {}, (z,))
    assert torch.allclose(module.decode(z).mean, module.likelihood(at_mean).mean)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"prior_scale": 0.0}, "decoder_prior_scale must be > 0"),
        ({"prior_scale": -1.0}, "decoder_prior_scale must be > 0"),
        ({"layers": "first"}, "bayesian_layers must be one of all, last"),
        ({"init_scale": 0}, "init_scale must be > 0"),
        ({"colour": 1}, "unknown decoder-weight option"),
        ({"posterior": "lowrank"}, "unknown weight posterior 'lowrank'"),
    ],
)
def test_bad_decoder_weight_options(options, message):
    with pytest.raises(ConfigError, match=message):
        build_module("vae", ModuleSpec(data_shape=(6,), decoder_weights=options))


def test_the_families_that_take_a_bayesian_decoder():
    assert {"vae", "hvae"} <= set(FAMILIES) and {"ae", "dae", "m2", "cvae"} <= set(REFUSING)


@pytest.mark.parametrize("family", REFUSING)
def test_other_families_refuse_a_bayesian_decoder(family):
    spec = ModuleSpec(
        data_shape=(6,),
        decoder_weights={"layers": "all"},
        model_options=FAMILY_OPTIONS.get(family, {}),
    )
    with pytest.raises(ConfigError, match="bayesian_decoder") as info:
        build_module(family, spec)
    assert "\n" not in str(info.value)


def test_decoder_weights_are_not_a_second_copy_of_the_decoder():
    module = build_module("vae", _spec())
    keys = list(module.state_dict())
    assert not any(k.startswith("decoder_weights.decoder") for k in keys)
    assert isinstance(module.decoder_weights, DecoderWeights)
    assert sum(k.startswith("decoder_weights.raw_scale.") for k in keys) == len(
        module.decoder_weights.names
    )


@pytest.mark.parametrize("objective", GLOBAL_OBJECTIVES)
def test_objectives_score_the_weight_sites_on_every_call(objective):
    """The weight term is in the loss of every call, also after a first call at a fixed θ
    (the objectives keep the route of a structure's first call): the loss at σ -> 0 less
    the one at fixed θ is (B/N) KL(q(θ) || p(θ)) in closed form (analytic KL objectives)
    or its one-draw estimate (within a few nats of it at this size)."""
    torch.manual_seed(0)
    module = build_module("vae", _spec(init_scale=1e-6))
    batch = Batch(_data(8), n=40)
    obj = OBJECTIVES.get(objective)()
    with torch.no_grad(), pyro.validation_enabled(False):
        with module.decoder_weights.fixed():
            pyro.set_rng_seed(1)
            fixed = obj(module.model, module.guide, batch)
        for _ in range(2):
            pyro.set_rng_seed(1)
            free = obj(module.model, module.guide, batch)
        kl = float(module.decoder_weights.kl()) * batch.global_scale
    gap = float(free.loss) - float(fixed.loss)
    assert gap == pytest.approx(kl, rel=0.05)
    assert kl > 100  # far above the Monte Carlo noise of the data term


@pytest.mark.parametrize("posterior", POSTERIORS)
@pytest.mark.parametrize("family", FAMILIES)
def test_held_out_rows_are_scored_at_a_weight_draw_without_the_weight_kl(family, posterior):
    """In each context of ``held_out()`` the programs have no weight site and decode at
    a draw θ ~ q(θ): the loss is the point-decoder loss at that draw, the same for the
    rows' data size N = 8 or 8,000 (the weight KL belongs to the training set), and it
    is the programs' loss with the weight term B/N (log q(θ) - log p(θ)) taken out.
    ``draws`` contexts give independent draws; a point decoder has one empty context."""
    torch.manual_seed(0)
    module = build_module(family, _spec(init_scale=0.05, posterior=posterior))
    x = _data(8)
    obj = OBJECTIVES.get("trace")()

    def loss(n, seed, held_out=False):
        torch.manual_seed(seed)
        with contextlib.ExitStack() as stack:
            if held_out:
                (context,) = module.held_out(draws=1)
                stack.enter_context(context)
            return float(obj(module.model, module.guide, Batch(x, n=n)).loss)

    with torch.no_grad(), pyro.validation_enabled(False):
        decoded = []
        for context in module.held_out(draws=3):
            with context:
                tr = poutine.trace(module.model).get_trace(Batch(x, n=8))
                decoded.append(module.decode(torch.zeros(1, 2)).mean)
            assert not any(sites.is_decoder_weight(s) for s in tr.nodes)
        assert len(decoded) == 3 and not torch.equal(decoded[0], decoded[1])
        torch.manual_seed(2)
        theta = module.decoder_weights.draw()
        with module.decoder_weights.fixed(theta):
            at_draw = float(obj(module.model, module.guide, Batch(x)).loss)
        held = [loss(n, 2, held_out=True) for n in (8, 8000)]
        # the same draws of θ and z with the weight sites in: B/N times the weight term
        full, small = loss(8, 2), loss(8000, 2)
    assert held[0] == held[1] == pytest.approx(at_draw, rel=1e-6)
    weight_term = (full - small) / (1 - 8 / 8000)
    assert abs(weight_term) > 1.0
    assert held[0] == pytest.approx(full - weight_term, rel=1e-5, abs=1e-3)


def test_a_point_decoder_scores_held_out_rows_in_one_empty_context():
    module = build_module("vae", ModuleSpec(data_shape=(6,), latent_dim=2, hidden=(5,)))
    contexts = list(module.held_out(draws=5))
    assert len(contexts) == 1
    with contexts[0]:
        tr = poutine.trace(module.model).get_trace(_data(3))
    assert not any(sites.is_decoder_weight(s) for s in tr.nodes)
