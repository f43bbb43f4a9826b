"""``python -m compose.k8s``: see :mod:`compose.k8s`."""

import sys

from compose.k8s.cli import main

sys.exit(main())
