"""``python -m jaxdistill.cli`` = the ``jaxdistill`` command."""

import sys

from . import main

sys.exit(main())
