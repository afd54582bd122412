"""The ``pyrovae`` command.

Verbs, one module each group:

* ``pyrovae train`` (:mod:`.train`): train a model into a run folder, ``--resume`` one,
  or launch ``--nproc`` processes.
* ``pyrovae evaluate RUN`` and ``pyrovae sample RUN`` (:mod:`.evaluate`): the held-out
  ELBO with its terms (and log p(x)) as JSON; prior samples as an image grid and ``.npy``.
* ``pyrovae analyze RUN`` (:mod:`.analyze`): the posterior analysis
  (:func:`pyrovae.analysis.analyze.analyze_run`).
* ``pyrovae select RUN...`` and ``pyrovae compare RUN...`` (:mod:`.compare`).
* ``pyrovae report RUN`` (:mod:`.report`): one self-contained HTML page.
* ``pyrovae components`` (:mod:`.components`): the registries.

Arguments several verbs share are defined once, with one default, in :mod:`.args`.
Errors a user can cause print one line ``pyrovae: error: ...`` and exit with status 2.
Nothing here imports torch before a verb runs, so that ``pyrovae --help`` is fast.
"""

from __future__ import annotations

from .app import build_parser, main
from .components import REGISTRIES, registry_table

__all__ = ["REGISTRIES", "build_parser", "main", "registry_table"]
