"""``python -m tripletrec`` runs the command line."""

import sys

from tripletrec.cli import main

sys.exit(main())
