"""`python -m services.console`: the same as `vaksin service console`."""

import sys

from services.runner import run_service

if __name__ == "__main__":
    sys.exit(run_service("console"))
