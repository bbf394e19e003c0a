"""The tool exactly as ``batch-payouts ARGS…`` runs it, plus the test-only hooks, for real-process tests:

    python tests/launch.py run FILE --yes …

Reads PAYOUTS_TEST_CRASH, PAYOUTS_TEST_BROKEN and PAYOUTS_TEST_RECEIVER_TO (see tests/hooks.py):
the installed package reads none of them, so an installed copy cannot be switched into a crash or
a broken build from its environment.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `tests` is importable, not just this folder

from batch_payouts.cli import main
from tests.hooks import install_from

if __name__ == "__main__":
    install_from(os.environ)
    main(prog_name="batch-payouts")
