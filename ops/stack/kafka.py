"""A single-node Apache Kafka broker in KRaft mode, its jars resolved through Maven from ``pom.xml``.

Layout under the stack folder: ``kafka/server.properties``, ``kafka/log4j.properties``, ``kafka/data`` (the
log, which survives restarts) and ``kafka/logs/server.log``. Jars go to ``<cache_dir>/kafka-<version>/libs``.
"""

from __future__ import annotations

import base64
import logging
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from ops.errors import StackError
from ops.stack.processes import StackState, pid_alive, stop_pid
from streamscore.settings import Settings

logger = logging.getLogger(__name__)

POM = Path(__file__).with_name("pom.xml")
MAIN_CLASS = "kafka.Kafka"


def kafka_version() -> str:
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text())
    assert match, "pom.xml must define kafka.version"
    return match.group(1)


def _host_port(bootstrap: str) -> tuple[str, int]:
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    return host or "127.0.0.1", int(port)


def broker_ready(bootstrap: str, timeout_ms: int = 3000) -> bool:
    """True when the broker answers a real metadata request (not just an open port)."""
    import socket

    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    host, port = _host_port(bootstrap)
    try:  # a closed port answers at once; only an open one is worth a (noisy, retrying) Kafka client
        socket.create_connection((host, port), timeout=timeout_ms / 1000).close()
    except OSError:
        return False
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms)
    except (KafkaError, OSError, ValueError):
        return False
    try:
        admin.describe_cluster()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


class KafkaBroker:
    service = "kafka"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.version = kafka_version()
        self.home = Path(settings.stack_dir).resolve() / "kafka"
        self.libs = Path(settings.cache_dir).resolve() / f"kafka-{self.version}" / "libs"
        self.host, self.port = _host_port(settings.kafka_bootstrap)
        self.state = StackState(settings.stack_dir)

    # -- setup -------------------------------------------------------------------------------------
    def ensure_jars(self) -> Path:
        """Resolve the broker's jars once; later calls reuse the cache."""
        marker = self.libs / ".resolved"
        if marker.is_file():
            return self.libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise StackError(
                self.service, "Maven (mvn) is needed once to resolve the Kafka jars; install it (apt-get install maven)"
            )
        self.libs.mkdir(parents=True, exist_ok=True)
        logger.warning("resolving kafka jars through maven", extra={"version": self.version, "into": str(self.libs)})
        result = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(POM),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={self.libs}",
                "-DincludeScope=runtime",
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0 or not any(self.libs.glob("kafka_2.13-*.jar")):
            raise StackError(
                self.service, "mvn could not resolve the Kafka jars", (result.stdout + result.stderr)[-3000:]
            )
        marker.write_text(self.version)
        return self.libs

    def write_config(self) -> Path:
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        controller = self.settings.kafka_controller_port
        properties = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{self.host}:{controller}",
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{controller}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.home / "data"),
            "num.partitions": str(self.settings.topic_partitions),
            "default.replication.factor": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "log.retention.hours": "168",
            "log.segment.bytes": str(64 * 1024 * 1024),
        }
        path = self.home / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in properties.items()))
        (self.home / "log4j.properties").write_text(
            "log4j.rootLogger=INFO, file\n"
            "log4j.appender.file=org.apache.log4j.RollingFileAppender\n"
            f"log4j.appender.file.File={self.home / 'logs' / 'server.log'}\n"
            "log4j.appender.file.MaxFileSize=20MB\nlog4j.appender.file.MaxBackupIndex=2\n"
            "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
            "log4j.logger.kafka=INFO\nlog4j.logger.org.apache.kafka=INFO\n"
        )
        return path

    def _java(self, *args: str, heap: str | None = None) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise StackError(self.service, "Java 17+ is needed to run the broker")
        opts = [f"-Dlog4j.configuration=file:{self.home / 'log4j.properties'}", "-Djava.awt.headless=true"]
        if heap:
            opts += [f"-Xmx{heap}", f"-Xms{heap}", "-XX:+UseG1GC"]
        return [java, *opts, "-cp", f"{self.libs}/*", *args]

    def format_storage(self) -> None:
        """Format the KRaft log folder on first start only; an existing log (and its topics) is kept."""
        if (self.home / "data" / "meta.properties").is_file():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        result = subprocess.run(
            self._java(
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(self.home / "server.properties"),
                "--ignore-formatted",
            ),
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise StackError(
                self.service, "formatting the KRaft storage failed", (result.stdout + result.stderr)[-3000:]
            )

    # -- lifecycle ---------------------------------------------------------------------------------
    def recorded_pid(self) -> int | None:
        pid = self.state.read().get(self.service)
        return pid if pid is not None and pid_alive(pid) else None

    def start(self, timeout: float = 90.0) -> str:
        """Start the broker unless one already answers on the bootstrap address; returns what happened."""
        if broker_ready(self.settings.kafka_bootstrap):
            return "already running"
        self.ensure_jars()
        self.write_config()
        self.format_storage()
        log = (self.home / "logs" / "stdout.log").open("ab")
        process = subprocess.Popen(
            self._java(MAIN_CLASS, str(self.home / "server.properties"), heap=self.settings.kafka_heap),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.state.record(self.service, process.pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.state.forget(self.service)
                raise StackError(self.service, f"broker exited with code {process.returncode}", self.log_tail())
            if broker_ready(self.settings.kafka_bootstrap, timeout_ms=2000):
                logger.info("kafka ready", extra={"pid": process.pid, "bootstrap": self.settings.kafka_bootstrap})
                return "started"
            time.sleep(0.5)
        self.stop()
        raise StackError(self.service, f"broker not ready after {timeout:.0f} s", self.log_tail())

    def stop(self) -> bool:
        pid = self.state.read().get(self.service)
        if pid is None:
            return False
        stopped = stop_pid(pid, MAIN_CLASS, timeout=30)
        self.state.forget(self.service)
        return stopped

    def status(self) -> dict:
        return {
            "service": self.service,
            "version": self.version,
            "bootstrap": self.settings.kafka_bootstrap,
            "ready": broker_ready(self.settings.kafka_bootstrap),
            "pid": self.recorded_pid(),
            "data": str(self.home / "data"),
        }

    def log_tail(self, lines: int = 30) -> str:
        for name in ("server.log", "stdout.log"):
            path = self.home / "logs" / name
            if path.is_file():
                return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        return ""
