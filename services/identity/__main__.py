"""`python -m services.identity`: the same as `vaksin service identity`."""

import sys

from services.runner import run_service

if __name__ == "__main__":
    sys.exit(run_service("identity"))
