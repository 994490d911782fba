"""``python -m rtsep`` runs the command line."""

import sys

from rtsep.cli import main

sys.exit(main())
