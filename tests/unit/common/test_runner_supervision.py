"""The supervisor of `vaksin up` with stand-in servers: a dead one is restarted and runtime.json
follows its pid; one that cannot start is tried again later, and meanwhile has no pid there."""

from __future__ import annotations

import json
from pathlib import Path

import structlog
from structlog.testing import capture_logs

from services.common.settings import Settings
from services.runner import LocalSystem, Server, _restart_servers


class StandIn:
    """Quacks like EmbeddedNats / EmbeddedPostgres for the supervisor."""

    def __init__(self, name: str, pid: int, *, fails: int = 0) -> None:
        self.name = name
        self.pid = pid
        self.alive = True
        self.fails = fails
        self.restarts = 0

    def running(self) -> bool:
        return self.alive

    def exit_code(self) -> int | None:
        return None if self.alive else -9

    def restart(self) -> None:
        self.restarts += 1
        if self.fails:
            self.fails -= 1
            raise RuntimeError("postgres exited with 1 while starting")
        self.pid += 100
        self.alive = True


def _system(tmp_path: Path, *servers: StandIn) -> LocalSystem:
    system = LocalSystem(Settings(data_dir=tmp_path), tmp_path)
    system.servers = [Server(s) for s in servers]  # type: ignore[arg-type]
    system.write_runtime()
    return system


def _processes(tmp_path: Path) -> dict[str, int | None]:
    return json.loads((tmp_path / "runtime.json").read_text())["processes"]


def test_a_dead_server_is_restarted_and_its_new_pid_recorded(tmp_path: Path) -> None:
    nats, pg = StandIn("nats", 10), StandIn("postgres", 20)
    system = _system(tmp_path, nats, pg)
    assert _processes(tmp_path) == {"nats": 10, "postgres": 20}
    nats.alive = False

    with capture_logs() as logs:
        assert _restart_servers(system, structlog.get_logger("up")) is True
    system.write_runtime()

    assert (nats.restarts, pg.restarts) == (1, 0)
    assert _processes(tmp_path) == {"nats": 110, "postgres": 20}
    assert [(e["event"], e["process"]) for e in logs] == [
        ("embedded server died; restarting", "nats"),
        ("embedded server restarted", "nats"),
    ]


def test_a_server_that_cannot_start_is_tried_again_later(tmp_path: Path) -> None:
    pg = StandIn("postgres", 20, fails=2)
    system = _system(tmp_path, pg)
    [watched] = system.servers
    pg.alive = False
    log = structlog.get_logger("up")

    with capture_logs() as logs:
        assert _restart_servers(system, log) is True  # its pid leaves runtime.json
        system.write_runtime()
        assert _processes(tmp_path) == {"postgres": None}
        assert _restart_servers(system, log) is False  # not before its back-off is over
        watched.next_attempt = 0.0
        assert _restart_servers(system, log) is False  # fails again
        watched.next_attempt = 0.0
        assert _restart_servers(system, log) is True
    system.write_runtime()

    assert pg.restarts == 3
    assert _processes(tmp_path) == {"postgres": 120}
    assert [e["event"] for e in logs] == [
        "embedded server died; restarting",
        "embedded server did not restart",
        "embedded server did not restart",
        "embedded server restarted",
    ]
    assert [e.get("retry_in_seconds") for e in logs[1:3]] == [2.0, 4.0]


def test_a_killed_process_is_restarted_at_once_and_a_crash_loop_backs_off() -> None:
    from services.runner import restart_delay

    assert restart_delay(0) == 0.0
    assert [restart_delay(n) for n in range(1, 8)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
