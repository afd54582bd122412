"""``pyrovae evaluate RUN`` (the held-out ELBO and its terms, and optionally log p(x)) and
``pyrovae sample RUN`` (prior samples as an image grid or scatter matrix, and ``.npy``)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..errors import ConfigError
from ..runs import names, to_json, write_json
from . import args as shared


def register(sub) -> None:
    """Add the ``evaluate`` and ``sample`` verbs."""
    p = shared.add_verb(sub, "evaluate", cmd_evaluate, "test-set ELBO and its terms, as JSON")
    shared.add_run_argument(p)
    shared.add_data_options(p)
    shared.add_count(
        p, "--particles", 10, "Monte Carlo samples of z per data point in the ELBO estimate"
    )
    shared.add_samples(p, optional=True)
    shared.add_weight_draws(p)
    shared.add_seed(p)
    shared.add_output(p, "JSON file to write (default: RUN/evaluation.json)")
    shared.add_progress(p)

    p = shared.add_verb(
        sub, "sample", cmd_sample, "draw samples from the prior and write an image grid"
    )
    shared.add_run_argument(p)
    shared.add_n(p, "number of samples drawn")
    shared.add_output(p, "PNG to write (default: RUN/samples-N.png)")
    shared.add_seed(p)
    shared.add_switch(p, "--draw", "draw x ~ p(x|z) instead of showing the mean E[x|z]")
    shared.add_condition(p, "sample")
    shared.add_weights(p)
    shared.add_progress(p)


def _folder(run: str) -> Path:
    """The run folder of a run folder or checkpoint file."""
    path = Path(run)
    return path if path.is_dir() else path.parent


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Evaluate a trained run on a held-out split: the ELBO per data point with its
    reconstruction and KL terms and their standard errors (and, for a classifier such as
    m2, the accuracy on the split's labelled rows); prints JSON and writes it to
    RUN/evaluation.json. With --samples K also log p(x) by importance sampling, bits per
    dimension, the gap log p(x) - ELBO, KL per latent dimension, active units and
    I(x; z). For a run with a Bayesian decoder the ELBO includes the weights' KL (its
    share 1/N per row, N the rows evaluated; ``weight_kl`` is the total) and log p(x) is
    the predictive log E_q(theta)[p(x|theta)] from --weight-draws S draws of the weights
    times K importance draws of z (a stochastic lower bound, biased low)."""
    import pyro

    from ..analysis import elbo_decomposition
    from ..estimators import load
    from ..runs.data import load_run_data
    from .train import targets

    est = load(args.run)
    data = load_run_data(est.data_info_, args.data)
    shared.check_at_least(args, 1, "particles")
    x = data.split(args.split)
    if x.shape[0] == 0:
        raise ConfigError(
            f"the {args.split} split of {data.name!r} is empty (its fraction is 0); "
            "choose another --split"
        )
    shared.check_at_least(args, 0, "samples")
    shared.check_at_least(args, 1, "weight_draws")
    if args.samples and not est.module_.has_latent_sites:
        raise ConfigError(
            f"--samples estimates log p(x), which needs latent variables; this run is a "
            f"{est.family}"
        )
    pyro.set_rng_seed(args.seed)
    out = {"run": str(args.run), "split": args.split, "model": est.family}
    # a conditional family is scored given the rows' conditions; the others score x
    y = targets(data, args.split) if est.is_conditional else None
    out.update(est.evaluate(x, particles=args.particles, y=y))  # checks x against the model
    out.update(_accuracy(est, x, data.labels(args.split)))
    if args.samples:
        x = est.with_targets(est.as_input(x), y)
        progress = shared.show_progress(args)
        out.update(
            elbo_decomposition(
                est.module_,
                x,
                samples=args.samples,
                particles=args.particles,
                progress=progress,
                weight_draws=args.weight_draws,
            )
        )
    print(to_json(out))
    target = Path(args.output) if args.output else _folder(args.run) / names.EVALUATION
    write_json(target, out)
    return 0


def _accuracy(est, x, y) -> dict:
    """A classifier family's accuracy on the split's labelled rows, with its binomial
    standard error sqrt(a (1 - a) / n); nothing for other families or without labels."""
    if not est.is_classifier or y is None:
        return {}
    n = int((y >= 0).sum())
    if n == 0:
        return {}
    acc = est.score(x, y)
    return {
        "accuracy": acc,
        "accuracy_se": math.sqrt(acc * (1 - acc) / n),
        "error": 1 - acc,
        "labelled": n,
    }


def cmd_sample(args: argparse.Namespace) -> int:
    """Decode N draws of z from the prior (from the fitted code distribution for
    autoencoders) and write a PNG grid plus the samples as .npy."""
    import numpy as np
    import pyro

    from ..estimators import load
    from ..plotting import save_image_rows, save_scatter_matrix

    shared.check_at_least(args, 1, "n")
    est = load(args.run)
    condition = shared.condition_given(args, est)
    pyro.set_rng_seed(args.seed)
    if getattr(est.module_, "decoder_weights", None) is not None:
        samples = est.sample(args.n, mean=not args.draw, condition=condition, weights=args.weights)
    elif args.weights != "mean":
        raise ConfigError(
            "--weights sample needs a run trained with --bayesian-decoder; this one has "
            "point weights"
        )
    else:
        samples = est.sample(args.n, mean=not args.draw, condition=condition)
    png = Path(args.output) if args.output else _folder(args.run) / names.samples_grid(args.n)
    if not png.suffix:
        png = png.with_suffix(".png")
    png.parent.mkdir(parents=True, exist_ok=True)
    info = est.data_info_
    if info.get("scaler"):
        from ..data import Scaler

        samples_out = Scaler.from_state(info["scaler"]).inverse(samples)
    else:
        samples_out = samples
    np.save(png.with_suffix(".npy"), samples_out.cpu().numpy())
    if len(est.data_shape_) >= 2:
        ncol = math.ceil(math.sqrt(args.n))
        title = f"{args.n} samples from the prior"
        if condition is not None:
            title += f" given {args.condition or Path(args.condition_values).name}"
        save_image_rows(png, [samples], [title], ncol=ncol)
    else:
        save_scatter_matrix(png, {"samples": samples_out}, names=info.get("feature_names"))
    print(to_json({"png": str(png), "npy": str(png.with_suffix(".npy"))}))
    return 0
