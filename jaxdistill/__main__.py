"""``python -m jaxdistill`` = the ``jaxdistill`` command (``jaxdistill.cli``)."""

import sys

from .cli import main

sys.exit(main())
