"""`python -m services.scheduler`: the same as `vaksin service scheduler`."""

import sys

from services.runner import run_service

if __name__ == "__main__":
    sys.exit(run_service("scheduler"))
