"""``python -m fitpipe.cli``: the ``fitpipe`` command."""

import sys

from fitpipe.cli import main

sys.exit(main())
