"""The M2 family: the enumerated label gives exactly the marginal over y, labelled rows
the supervised ELBO plus the auxiliary term, one batched decoder call, an exact sum over
y in log p(x)."""

from __future__ import annotations

import math

import pyro
import pytest
import torch
from pyro import poutine
from torch.nn import functional as F

from pyrovae import sites
from pyrovae.data.batch import Batch
from pyrovae.errors import ConfigError, DataError
from pyrovae.models import ModuleSpec, build_module
from pyrovae.models.m2 import aux_scale
from pyrovae.objectives import OBJECTIVES

C, D, Z = 3, 6, 2


def _m2(**spec):
    torch.manual_seed(0)
    return build_module(
        "m2",
        ModuleSpec(
            data_shape=(D,), latent_dim=Z, hidden=(8,), model_options={"n_classes": C}, **spec
        ),
    ).double()


def _data(rows=5):
    torch.manual_seed(1)
    return (torch.rand(rows, D) > 0.5).double()


def _traces(m, batch, beta=1.0):
    """The enum objective's loss and the guide trace it used (the draws of z)."""
    objective = OBJECTIVES.get("enum")()
    loss, traces = objective.elbo.loss_and_traces(m.model, m.guide, batch, beta=beta)
    return objective, loss, traces[0][1]


def _explicit_elbo(m, x, y, labelled, z, beta=1.0):
    """Per-row ELBO by hand with the guide's draws z ``(C, B, Z)`` of each class:
    labelled rows log p(x|y,z_y) + log p(y) + beta (log p(z_y) - log q(z_y|x,y));
    unlabelled rows sum_y q(y|x) [log p(x|y,z_y) + log p(y) + beta (log p(z_y) -
    log q(z_y|x,y)) - log q(y|x)]."""
    h = m.encoder(x)
    log_qy = F.log_softmax(m.classifier(x), -1)  # (B, C)
    log_py = -math.log(C)
    rows = []
    for n in range(x.shape[0]):
        terms = []
        for k in range(C):
            code = F.one_hot(torch.tensor(k), C).to(x.dtype)
            q = m.guide_head(torch.cat([h[n], code])[None])
            zk = z[k, n][None]
            log_px = m.decode(zk, torch.tensor([k])).log_prob(x[n][None])[0]
            kl_z = q.log_prob(zk)[0] - m.prior().log_prob(zk)[0]
            terms.append(log_px + log_py - beta * kl_z)
        terms = torch.stack(terms)
        if labelled[n]:
            rows.append(terms[y[n]])
        else:
            rows.append((log_qy[n].exp() * (terms - log_qy[n])).sum())
    return torch.stack(rows)


@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_enumeration_is_the_exact_sum_over_classes(beta):
    """TraceEnum_ELBO's loss on a batch mixing labelled and unlabelled rows equals the
    explicit sum over the classes with the same draws of z, to float64 rounding; the
    per-row terms recon - kl are the ELBO at beta = 1."""
    m = _m2().eval()  # no auxiliary term
    x = _data()
    y = torch.tensor([2, -1, 0, -1, -1])
    labelled = y >= 0
    pyro.set_rng_seed(0)
    objective, loss, guide_tr = _traces(m, Batch(x, y), beta)
    z = guide_tr.nodes[sites.LATENT]["value"]
    assert z.shape == (C, 5, Z)  # one draw of z per class and row, one batched call
    expected = _explicit_elbo(m, x, y.clamp(min=0), labelled, z, beta)
    torch.testing.assert_close(loss, -expected.sum(), rtol=1e-10, atol=1e-10)
    if beta == 1.0:
        pyro.set_rng_seed(0)
        terms = objective(m.model, m.guide, Batch(x, y))
        torch.testing.assert_close(terms.loss, loss)
        torch.testing.assert_close(terms.recon - terms.kl, expected.detach())


def test_all_labelled_is_the_supervised_elbo_plus_the_auxiliary_term():
    """Every row labelled, in training mode: the loss is minus the supervised ELBO
    log p(x|y,z) + log p(y) + log p(z) - log q(z|x,y) minus aux_scale log q(y|x), and the
    gradient reaches the classifier only through the auxiliary term."""
    m = _m2().train()
    m.aux_scale.fill_(aux_scale(0.1, 50, 5))  # 0.1 * N / L = 1.0
    x = _data()
    y = torch.tensor([2, 1, 0, 0, 1])
    pyro.set_rng_seed(3)
    _, loss, guide_tr = _traces(m, Batch(x, y))
    z = guide_tr.nodes[sites.LATENT]["value"]
    supervised = _explicit_elbo(m, x, y, torch.ones(5, dtype=torch.bool), z)
    aux = F.log_softmax(m.classifier(x), -1).gather(1, y[:, None])[:, 0]
    torch.testing.assert_close(loss, -(supervised.sum() + 1.0 * aux.sum()), rtol=1e-10, atol=0)
    m.aux_scale.fill_(0.0)
    pyro.set_rng_seed(3)
    _, loss, _ = _traces(m, Batch(x, y))
    grads = torch.autograd.grad(loss, list(m.classifier.parameters()), allow_unused=True)
    assert all(g is None or (g == 0).all() for g in grads)


def test_the_auxiliary_term_is_for_training_only():
    m = _m2().train()
    m.aux_scale.fill_(2.0)
    x, y = _data(), torch.tensor([2, 1, 0, -1, 1])
    tr = poutine.trace(m.model).get_trace(Batch(x, y))
    assert sites.LABEL_AUX in tr.nodes
    m.eval()
    tr = poutine.trace(m.model).get_trace(Batch(x, y))
    assert sites.LABEL_AUX not in tr.nodes


def test_the_decoder_runs_once_per_step_over_classes_times_rows():
    m = _m2()
    calls = []
    m.decoder.register_forward_hook(lambda mod, inp, out: calls.append(tuple(inp[0].shape)))
    x, y = _data(7), torch.tensor([0, -1, -1, 1, -1, 2, -1])
    OBJECTIVES.get("enum")()(m.model, m.guide, Batch(x, y))
    assert calls == [(C, 7, Z + C)]


def test_log_likelihood_sums_the_label_exactly():
    """With q(z|x,y) = p(z) = N(0, I) and a decoder that ignores z, every importance
    weight is exactly sum_y pi_y p(x|y): log p(x) = log (1/C) sum_y p(x|y)."""
    m = _m2().eval()
    with torch.no_grad():
        m.guide_head.linear.weight.zero_()
        m.guide_head.linear.bias[:Z] = 0.0
        m.guide_head.linear.bias[Z:] = math.log(math.expm1(1 - 1e-5))  # softplus + 1e-5 = 1
        m.decoder.net[0].weight[:, :Z] = 0.0  # the decoder reads y only
    x = _data()
    with torch.no_grad():
        lw = m.direct_log_weights(x)(4)
        z0 = torch.zeros(5, Z, dtype=x.dtype)
        per_class = torch.stack([m.decode(z0, torch.full((5,), k)).log_prob(x) for k in range(C)])
    expected = torch.logsumexp(per_class, 0) - math.log(C)
    assert lw.shape == (4, 5)
    torch.testing.assert_close(lw, expected.expand(4, 5), rtol=1e-10, atol=1e-10)


def test_encode_is_the_mixture_over_the_classifier():
    m = _m2().eval()
    x = _data()
    with torch.no_grad():
        q = m.encode(x)
        probs = m.classify(x).probs
        means = torch.stack(
            [m.encode_given(m.encoder(x), torch.full((5,), k)).mean for k in range(C)], 1
        )
    torch.testing.assert_close(q.mean, (probs[..., None] * means).sum(1))


def test_labels_are_checked():
    m = _m2()
    assert m.targets([0, -1, 2]).tolist() == [0, -1, 2]
    assert m.targets(torch.tensor([1.0, -1.0])).dtype == torch.long
    for bad, message in [
        ([0, 3], "class indices 0..2 or -1"),
        ([0, -2], "class indices >= 0 or -1"),
        ([0.5, 1], "integer class indices"),
        (["a", "b"], "integer class indices"),
    ]:
        with pytest.raises(DataError, match=message):
            m.targets(bad)


def test_n_classes_is_required():
    with pytest.raises(ConfigError, match="^the m2 model needs n_classes >= 2; got None$"):
        build_module("m2", ModuleSpec(data_shape=(D,), latent_dim=Z, hidden=(8,)))
