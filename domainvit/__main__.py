"""``python -m domainvit`` runs the command line (also under ``torchrun -m domainvit``)."""

import sys

from domainvit.cli import main

sys.exit(main())
