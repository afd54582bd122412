"""`pyrovae compare --seed`: the same seed reproduces every number, another changes the
Monte Carlo ones."""

from __future__ import annotations

import json

import numpy as np

from pyrovae.cli import main


def test_seed_reproduces_the_comparison(digits, tmp_path, capsys):
    np.save(tmp_path / "x.npy", digits.train[:200].numpy())
    base = ["train", "--data", str(tmp_path / "x.npy"), "--epochs", "1", "--hidden", "16"]
    base += ["--latent-dim", "2", "--no-progress"]
    runs = [str(tmp_path / "ae"), str(tmp_path / "vae")]
    assert main([*base, "--model", "ae", "-o", runs[0]]) == 0
    assert main([*base, "-o", runs[1]]) == 0

    def compare(name, seed):
        capsys.readouterr()
        args = ["compare", *runs, "--output", str(tmp_path / name), "--n", "20"]
        assert main([*args, "--samples", "5", "--seed", str(seed)]) == 0
        printed = capsys.readouterr().out
        return json.loads((tmp_path / name / "comparison.json").read_text()), printed

    (a, printed_a), (b, printed_b), (c, _) = compare("a", 1), compare("b", 1), compare("c", 2)
    assert a == b and printed_a.replace("/a/", "/b/") == printed_b.replace("/a/", "/b/")
    assert a["settings"]["seed"] == 1 and c["settings"]["seed"] == 2
    ae_a, vae_a = a["rows"]
    ae_c, vae_c = c["rows"]
    # importance sampling, posterior draws and prior samples follow the seed ...
    for key in ("log_likelihood", "rate", "mmd", "sample_nn_distance"):
        assert vae_a[key] != vae_c[key], key
    # ... the deterministic autoencoder's reconstruction does not
    assert ae_a["squared_error"] == ae_c["squared_error"]
