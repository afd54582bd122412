"""Documentation that is generated from the code stays equal to it."""

from __future__ import annotations

import re
from pathlib import Path

from pyrovae.cli import registry_table

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_the_registry_table_in_architecture_md_is_the_registries():
    text = (DOCS / "architecture.md").read_text()
    match = re.search(r"<!-- registries:[^\n]*-->\n(.*?)<!-- /registries -->", text, re.S)
    assert match is not None, "docs/architecture.md lost its registry table markers"
    assert match.group(1) == registry_table()


def test_registry_table_lists_every_registered_prior():
    from pyrovae.priors import PRIORS

    row = next(line for line in registry_table().splitlines() if "`PRIORS`" in line)
    assert row.count("`") // 2 - 2 == len(PRIORS.names())
