"""One stochastic variational inference step.

SVI (Hoffman et al. 2013; Ranganath et al. 2014) with a Pyro ELBO: estimate
the (beta-weighted) negative ELBO of a minibatch with the objective, backpropagate,
take one optimizer step. This is what ``pyro.infer.SVI.step`` does; pyrovae
drives a single ``torch.optim`` optimizer over ``module.parameters()`` instead
of ``pyro.optim`` (which keeps one optimizer per parameter and lives in Pyro's
global parameter store), so that optimizer state is an ordinary
``state_dict`` and the step has no per-parameter Python overhead.

The loss is averaged over the minibatch, so the learning rate does not depend
on the batch size.
"""

from __future__ import annotations

import torch

from ..objectives import LossTerms, Objective


def train_step(module, objective: Objective, optimizer: torch.optim.Optimizer, x) -> LossTerms:
    """Run one SVI step on minibatch ``x`` and return the loss terms."""
    optimizer.zero_grad(set_to_none=True)
    terms = objective(module.model, module.guide, x)
    (terms.loss / x.shape[0]).backward()
    optimizer.step()
    return terms


@torch.no_grad()
def eval_step(module, objective: Objective, x) -> LossTerms:
    """Evaluate the objective on ``x`` without gradients."""
    return objective(module.model, module.guide, x)
