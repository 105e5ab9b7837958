"""``python -m traingym.doctor demo``: see :mod:`traingym.doctor.demo`."""

import sys

from traingym.doctor.demo import main

sys.exit(main())
