"""PID bookkeeping: know which processes this stack started, and stop only those."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.is_file() and ") Z " in stat.read_text():
        return False  # a zombie is already dead
    return True


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def stop_pid(pid: int, must_contain: str, timeout: float = 30.0) -> bool:
    """SIGTERM the process if it is still the one we started (its command line contains ``must_contain``),
    then SIGKILL after ``timeout``. Returns whether a process was stopped."""
    if not pid_alive(pid) or must_contain not in cmdline(pid):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    return True


class StackState:
    """``state.json``: service name → PID of the process ``up`` started."""

    def __init__(self, stack_dir: Path):
        self.path = Path(stack_dir) / "state.json"

    def read(self) -> dict[str, int]:
        if not self.path.is_file():
            return {}
        return {k: int(v) for k, v in json.loads(self.path.read_text()).items()}

    def record(self, service: str, pid: int) -> None:
        state = self.read()
        state[service] = pid
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(state))

    def forget(self, service: str) -> None:
        state = self.read()
        if state.pop(service, None) is not None:
            self.path.write_text(json.dumps(state))
