"""`python -m services.screening`: the same as `vaksin service screening`."""

import sys

from services.runner import run_service

if __name__ == "__main__":
    sys.exit(run_service("screening"))
