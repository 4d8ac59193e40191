"""The small version of the chaos harness (bench/chaos.py, issue 12): 12 health workers walk from
`VAKSIN` to their ticket under `vaksin up` while a random service process is SIGKILLed every 3 s
for 30 s, the embedded nats-server and PostgreSQL are SIGKILLed once each, and every service is
restarted in turn; no message is lost, nothing happens twice, and every journey is done within
60 s of the last fault."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.servers

HARNESS = Path(__file__).resolve().parents[2] / "bench" / "chaos.py"


def _harness() -> ModuleType:
    """bench/ is not a package: load the script as the module `bench_chaos`."""
    if "bench_chaos" in sys.modules:
        return sys.modules["bench_chaos"]
    spec = importlib.util.spec_from_file_location("bench_chaos", HARNESS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_chaos"] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(400)
def test_twelve_journeys_ride_through_kills_infra_faults_and_a_rolling_restart() -> None:
    chaos = _harness()
    options = chaos.parse_args(["--journeys", "12", "--fault-seconds", "30", "--kill-every", "3"])

    summary = chaos.execute(options)

    report = {
        k: summary[k] for k in ("completed", "lost", "busy_replies", "duplicates", "stuck", "seed")
    }
    assert summary["service_kills"] >= 8 and summary["infra_kills"] == ["nats", "postgres"]
    assert len(summary["rolling_restart"]) == len(chaos.SERVICE_NAMES)
    assert summary["completed"] == summary["journeys"] == 12, report
    assert summary["lost"] == 0, report
    assert summary["duplicate_effects"] == 0, report
    assert summary["longest_stall_after_last_fault_s"] <= 60, report
    assert summary["target_met"], report
