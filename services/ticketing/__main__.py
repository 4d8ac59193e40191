"""`python -m services.ticketing`: the same as `vaksin service ticketing`."""

import sys

from services.runner import run_service

if __name__ == "__main__":
    sys.exit(run_service("ticketing"))
