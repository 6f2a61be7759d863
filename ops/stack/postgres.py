"""A local PostgreSQL cluster for development, tests and the demo (used only when ``DATABASE_URL`` is unset).

Debian's server package is installed when missing (as root); the cluster lives in ``<stack_dir>/postgres``,
listens on 127.0.0.1 only, and trusts loopback connections — a development convenience, never a production
setting: production points ``DATABASE_URL`` and the role URLs at a managed server with real credentials.
PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres`` system user.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

from ops.errors import StackError
from ops.stack.processes import StackState, pid_alive
from streamscore.settings import Settings

logger = logging.getLogger(__name__)

SUPERUSER = "streamscore"


def find_bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` that has ``pg_ctl`` and ``initdb``."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0
    )
    for folder in reversed(candidates):
        if (folder / "pg_ctl").is_file() and (folder / "initdb").is_file():
            return folder
    return None


def cluster_home(stack_dir: Path) -> Path:
    """Where the cluster lives: ``<stack_dir>/postgres``, or, as root, a folder of the ``postgres`` user.

    As root the server runs as ``postgres``, which may not be able to enter the checkout (a clone under
    /root, say); its own home (/var/lib/postgresql) always works. One folder per stack directory.
    """
    stack_dir = stack_dir.resolve()
    if os.geteuid() != 0:
        return stack_dir / "postgres"
    digest = hashlib.sha1(str(stack_dir).encode()).hexdigest()[:10]
    return Path("/var/lib/postgresql") / f"streamscore-{digest}"


class LocalPostgres:
    service = "postgres"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.home = cluster_home(Path(settings.stack_dir))
        self.data = self.home / "data"
        self.sockets = self.home / "run"
        self.logfile = self.home / "logs" / "postgres.log"
        self.port = settings.pg_port
        self.state = StackState(settings.stack_dir)

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg2://{SUPERUSER}@127.0.0.1:{self.port}/{self.settings.pg_database}"

    def role_url(self, role: str) -> str:
        return f"postgresql+psycopg2://{role}@127.0.0.1:{self.port}/{self.settings.pg_database}"

    # -- setup -------------------------------------------------------------------------------------
    def ensure_installed(self) -> Path:
        folder = find_bin_dir()
        if folder is not None:
            return folder
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise StackError(
                self.service,
                "PostgreSQL server binaries not found; install Debian's postgresql package or set DATABASE_URL",
            )
        logger.warning("installing postgresql with apt-get")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "postgresql"]):
            result = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if result.returncode != 0:
                raise StackError(self.service, f"{' '.join(cmd)} failed", (result.stdout + result.stderr)[-3000:])
        folder = find_bin_dir()
        if folder is None:
            raise StackError(self.service, "postgresql installed but pg_ctl was not found under /usr/lib/postgresql")
        return folder

    def _as_owner(self, cmd: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd

    def _run(self, cmd: list[str], what: str) -> None:
        result = subprocess.run(self._as_owner(cmd), capture_output=True, text=True, cwd="/")
        if result.returncode != 0:
            raise StackError(
                self.service, f"{what} failed", (result.stdout + result.stderr + "\n" + self.log_tail())[-3000:]
            )

    def init_cluster(self, bin_dir: Path) -> None:
        if (self.data / "PG_VERSION").is_file():
            return
        for folder in (self.home, self.data, self.sockets, self.logfile.parent):
            folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.home, "postgres", "postgres")
            for folder in (self.data, self.sockets, self.logfile.parent):
                shutil.chown(folder, "postgres", "postgres")
            self.data.chmod(0o700)
        self._run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
            ],
            "initdb",
        )

    # -- lifecycle ---------------------------------------------------------------------------------
    def ready(self) -> bool:
        import psycopg2

        try:
            psycopg2.connect(
                host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres", connect_timeout=2
            ).close()
            return True
        except psycopg2.OperationalError:
            return False

    def start(self, timeout: int = 60) -> str:
        if self.ready():
            self.ensure_database()
            return "already running"
        bin_dir = self.ensure_installed()
        self.init_cluster(bin_dir)
        options = f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=on"
        self._run(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.logfile),
                "-w",
                "-t",
                str(timeout),
                "-o",
                options,
                "start",
            ],
            "pg_ctl start",
        )
        pid = int((self.data / "postmaster.pid").read_text().splitlines()[0])
        self.state.record(self.service, pid)
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline:
                raise StackError(self.service, "server started but refuses connections", self.log_tail())
            time.sleep(0.3)
        self.ensure_database()
        return "started"

    def ensure_database(self) -> None:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.settings.pg_database,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{self.settings.pg_database}"')
        conn.close()

    def stop(self) -> bool:
        pid = self.state.read().get(self.service)
        if pid is None:
            return False
        stopped = False
        bin_dir = find_bin_dir()
        if pid_alive(pid) and bin_dir is not None and (self.data / "postmaster.pid").is_file():
            recorded = int((self.data / "postmaster.pid").read_text().splitlines()[0])
            if recorded == pid:
                self._run([str(bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"], "pg_ctl stop")
                stopped = True
        self.state.forget(self.service)
        return stopped

    def status(self) -> dict:
        pid = self.state.read().get(self.service)
        return {
            "service": self.service,
            "url": self.admin_url,
            "ready": self.ready(),
            "pid": pid if pid is not None and pid_alive(pid) else None,
            "data": str(self.data),
        }

    def log_tail(self, lines: int = 30) -> str:
        if self.logfile.is_file():
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        return ""
