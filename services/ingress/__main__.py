"""`python -m services.ingress`: the same as `vaksin service ingress`."""

import sys

from services.runner import run_service

if __name__ == "__main__":
    sys.exit(run_service("ingress"))
