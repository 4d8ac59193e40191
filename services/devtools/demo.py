"""`vaksin demo-data`: a small sample registry for trying the system (see README)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from services.common.settings import Settings
from services.identity.registry_import import import_registry_file

DEMO_REGISTRY = Path(str(resources.files(__package__).joinpath("demo_registry.csv")))


async def load_demo_data(settings: Settings) -> int:
    print(f"loading the sample registry from {DEMO_REGISTRY.name}")
    status = await import_registry_file(settings, DEMO_REGISTRY)
    if status == 0:
        print("try it: `vaksin chat` writes as 6281200000001 (Siti); her NIK ends in 850001")
    return status
