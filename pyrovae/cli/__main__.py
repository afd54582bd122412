"""``python -m pyrovae.cli``: the ``pyrovae`` command."""

import sys

from .app import main

sys.exit(main())
