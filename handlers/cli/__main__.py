"""``python -m handlers.cli``: how tests, benchmarks and the container start keydesk."""

import sys

from handlers.cli import main

sys.exit(main())
