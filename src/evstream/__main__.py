"""``python -m evstream``: the ``evstream`` command."""

import sys

from .cli import main

sys.exit(main())
