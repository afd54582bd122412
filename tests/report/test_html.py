"""`pyrovae report RUN`: a self-contained HTML page with every section of a run."""

from __future__ import annotations

import base64
import html
import io
import json
import re

import pytest

from pyrovae.cli import main
from pyrovae.errors import CheckpointError, ConfigError
from pyrovae.report import build_report
from pyrovae.report.html import esc, flatten, table

#: Part of the data path of the tabular run (see conftest.py): HTML that must come out escaped.
EVIL = "<script>alert(1)"
SECTION_IDS = (
    "run",
    "curves",
    "reconstructions",
    "samples",
    "traversals",
    "interpolations",
    "latent",
    "kl",
    "analysis",
)
IMG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="([^"]*)">')


def _images(page: str) -> list[tuple[bytes, str]]:
    return [(base64.b64decode(data, validate=True), alt) for data, alt in IMG.findall(page)]


def _check_png(png: bytes) -> None:
    import matplotlib.image as mpimg

    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(io.BytesIO(png), format="png")
    assert min(img.shape[:2]) > 50
    assert img[..., :3].std() > 0.02  # something is drawn


def _common_checks(page: str) -> list[tuple[bytes, str]]:
    assert page.startswith("<!DOCTYPE html>")
    for sid in SECTION_IDS:
        assert f'<section id="{sid}">' in page
    assert "could not be drawn" not in page
    assert "<script" not in page.lower()  # no script of ours, nothing injected
    assert not re.search(r'src="(?!data:image/png;base64,)', page)  # nothing external
    images = _images(page)
    assert len(images) == page.count("<img ")  # every image is an embedded PNG
    for png, _ in images:
        _check_png(png)
    return images


@pytest.fixture(scope="module")
def vae_page(vae_run):
    path = build_report(vae_run)
    assert path == vae_run / "report.html"
    return path.read_text()


def test_vae_report_has_every_section_with_figures(vae_page):
    images = _common_checks(vae_page)
    alts = [alt for _, alt in images]
    for alt in (
        "training curves",
        "reconstructions",
        "prior samples",
        "latent traversals",
        "interpolation",
        "path norms",
        "latent space",
        "KL per dimension",
    ):
        assert alt in alts, alt
    assert alts.count("interpolation") == 2
    # the files of `pyrovae analyze` are embedded, diagnostics.json as a table
    assert "uncertainty.png" in alts and "latent.png" in alts
    assert "decomposition.active_units" in vae_page and "ood.auroc" in vae_page
    assert "posterior_summary.csv" in vae_page
    assert "Active units: <strong>" in vae_page
    # configuration and numbers
    assert '<th>latent_dim</th><td class="num">3</td>' in vae_page
    assert "test split (180 points): elbo" in vae_page


def test_ae_report_skips_prior_and_kl_with_notes(ae_run):
    page = build_report(ae_run, ae_run / "out" / "ae.html", n=50).read_text()
    images = _common_checks(page)
    alts = [alt for _, alt in images]
    assert "prior samples" not in alts and "KL per dimension" not in alts
    assert "has no prior p(z), so there are no prior samples" in page
    assert "has no prior, so there is no KL term" in page
    for alt in ("training curves", "reconstructions", "latent traversals", "latent space"):
        assert alt in alts
    assert "No posterior analysis in this run folder" in page
    assert "test split (50 points): recon" in page


def test_tabular_report_escapes_what_comes_from_the_run(tabular_run):
    page = build_report(tabular_run).read_text()
    _common_checks(page)
    # the data path in config.toml holds "<script>alert(1)": shown, escaped
    assert html.escape(EVIL) in page
    assert EVIL not in page
    assert "Scatter matrix" in page
    # the header's names are listed, escaped ("<b>e</b>" is the fifth column's name)
    assert f"<th>features</th><td>{html.escape('a, b, c, d, <b>e</b>')}</td>" in page


def test_escaping_helpers():
    assert esc('<a href="x">&') == "&lt;a href=&quot;x&quot;&gt;&amp;"
    out = table([("<b>name</b>", "</td><script>x</script>"), ("list", [1.0, 2.5])])
    assert "<script>" not in out and "&lt;/td&gt;&lt;script&gt;" in out
    assert "&lt;b&gt;name&lt;/b&gt;" in out and "1, 2.5" in out
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": [3]}) == [
        ("a.b", 1),
        ("a.c.d", 2),
        ("e", [3]),
    ]


def test_analysis_files_are_escaped(vae_run, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(vae_run, run)
    diag = json.loads((run / "diagnostics.json").read_text())
    diag["ood"]["reference"] = "</td></tr></table><script>alert(2)</script>"
    (run / "diagnostics.json").write_text(json.dumps(diag))
    page = build_report(run, n=40).read_text()
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page


def test_cli_report_prints_the_path(ae_run, capsys, tmp_path):
    target = tmp_path / "r.html"
    assert main(["report", str(ae_run), "--output", str(target), "--n", "30"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["report"] == str(target) and target.stat().st_size == out["bytes"] > 10_000


def test_cli_report_rejects_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a run folder" in err[0]
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "is not a run folder" in capsys.readouterr().err


def test_bad_options_fail_with_one_clear_error(ae_run, capsys):
    with pytest.raises(ConfigError, match="n must be an integer >= 1"):
        build_report(ae_run, n=0)
    with pytest.raises(CheckpointError):
        build_report(ae_run / "metrics.csv")
    assert main(["report", str(ae_run), "--n", "0"]) == 2
    assert "--n must be >= 1" in capsys.readouterr().err


def test_python_api_run_needs_data(tmp_path, small_digits, digits):
    from pyrovae.api import VAE

    train, val = small_digits
    run = tmp_path / "api"
    VAE(latent_dim=2, hidden=(16,), epochs=2).fit(train, X_val=val, run_dir=run)
    with pytest.raises(ConfigError, match="does not record its data"):
        build_report(run)
    page = build_report(run, data=digits, n=60).read_text()
    _common_checks(page)
    assert "test split (60 points)" in page


def test_hierarchical_vamp_run_reading_both_layers_analyzes_and_reports(tmp_path):
    """A hierarchical VAE with the VampPrior on z2 and the decoder reading [z1, z2]: the
    analysis (NUTS refinement over both layers, whose mixture prior needs a support with
    a transform to the reals) and the report (traversals and interpolations decode codes
    of size latent + top) run end to end."""
    from pyrovae.cli import main

    run = tmp_path / "hvae"
    train = ["train", "--epochs", "2", "--hidden", "16", "--no-progress", "-o", str(run)]
    model = ["--model", "hvae", "--top-from-x", "--decoder-reads-top", "--prior", "vamp"]
    assert main([*train, *model, "--latent-dim", "3", "--top-dim", "2"]) == 0
    analyze = ["analyze", str(run), "--n", "6", "--draws", "10", "--samples", "10"]
    nuts = ["--mcmc-points", "1", "--mcmc-samples", "20", "--mcmc-warmup", "20"]
    assert main([*analyze, *nuts, "--sbc", "0"]) == 0
    page = build_report(run).read_text()
    alts = [alt for _, alt in _common_checks(page)]
    assert "latent traversals" in alts and "interpolation" in alts
