"""Names of the sample sites and plates in every pyrovae Pyro program.

Models and guides use these constants, never string literals, so that
analysis code (log-likelihood, ArviZ export, MCMC) finds the same sites.
"""

from __future__ import annotations

#: The plate over data points (the minibatch).
DATA_PLATE = "data"
#: The latent code z.
LATENT = "z"
#: The top latent of a two-layer hierarchical model (z2 -> z1 -> x).
LATENT_TOP = "z2"
#: The observed data x.
OBS = "x"
#: Deterministic site recording the autoencoder's point code.
CODE = "code"
#: Prefix of the Bayesian decoder's weight sites (global latents, outside the data
#: plate): the site of decoder parameter ``net.0.weight`` is ``theta.net.0.weight``.
DECODER_WEIGHTS = "theta"


def decoder_weight(parameter: str) -> str:
    """The sample site of the Bayesian decoder's parameter ``parameter``."""
    return f"{DECODER_WEIGHTS}.{parameter}"


def is_decoder_weight(site: str) -> bool:
    """Whether ``site`` is one of the Bayesian decoder's weight sites."""
    return site.startswith(DECODER_WEIGHTS + ".")


#: The component k of a mixture posterior over the decoder's weights, drawn by the
#: guide alone as a point mass (log-density 0; recorded so that a replayed guide uses
#: the same component).
WEIGHT_COMPONENT = "theta_component"


#: The class label y of a semi-supervised model: observed for the labelled rows.
LABEL = "y"
#: The label of the unlabelled rows, a latent site summed out by enumeration.
LABEL_LATENT = "y_latent"
#: The auxiliary classification term alpha log q(y|x) of the labelled rows (a factor).
LABEL_AUX = "y_aux"

#: The scale s of a Gaussian model discrepancy δ ~ N(0, s Σ) when conditioning infers it
#: (:mod:`pyrovae.inference.discrepancy`): one per row, inside the data plate.
DISCREPANCY_SCALE = "discrepancy_scale"
#: The factor site of the discrepancy's log-likelihood of the observed entries.
DISCREPANCY = "discrepancy"
#: The plate over rows of the discrepancy's sites (the family's own data plate has
#: closed by then; a plate name appears once per trace).
DISCREPANCY_PLATE = "discrepancy_rows"
