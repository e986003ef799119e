"""``python -m entropy_rl.cli`` (torchrun launches the trainer this way)."""

import sys

from entropy_rl.cli import main

sys.exit(main())
