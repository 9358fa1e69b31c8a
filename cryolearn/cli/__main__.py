"""``python -m cryolearn.cli ...`` (e.g. under ``torchrun --nproc-per-node 2 -m cryolearn.cli train ...``)."""

import sys

from . import main

sys.exit(main())
