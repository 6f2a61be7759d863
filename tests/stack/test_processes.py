"""`stack down` stops only what `stack up` started: PID bookkeeping on real processes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from ops.stack.processes import StackState, cmdline, pid_alive, stop_pid


def test_stop_pid_stops_only_a_matching_process(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        # the child's command line is visible in /proc once it has exec'd; a loaded machine can lag behind Popen
        deadline = time.monotonic() + 10
        while "time.sleep(60)" not in cmdline(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pid_alive(proc.pid)
        assert not stop_pid(proc.pid, must_contain="kafka.Kafka"), "a PID reused by another program is left alone"
        assert pid_alive(proc.pid)
        assert stop_pid(proc.pid, must_contain="time.sleep(60)", timeout=10)
        proc.wait(timeout=10)
        assert not pid_alive(proc.pid)
    finally:
        proc.kill()


def test_state_file_records_and_forgets(tmp_path: Path) -> None:
    state = StackState(tmp_path)
    assert state.read() == {}
    state.record("kafka", 123)
    state.record("postgres", 456)
    state.forget("kafka")
    assert StackState(tmp_path).read() == {"postgres": 456}
