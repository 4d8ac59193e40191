"""`python -m services.notifier`: the same as `vaksin service notifier`."""

import sys

from services.runner import run_service

if __name__ == "__main__":
    sys.exit(run_service("notifier"))
