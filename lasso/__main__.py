"""``python -m lasso``: the same command line as the ``lasso`` script."""

import sys

from lasso.cli import main

sys.exit(main())
