"""A local Apache Kafka cluster in KRaft mode (one node, or several on loopback ports), its jars resolved
through Maven from ``pom.xml``.

Every node is both a broker and a controller, so three nodes form a controller quorum that survives the loss of
one. Layout under the stack folder: ``kafka/cluster.id`` (shared by the nodes), and per node
``kafka/node-<n>/{server.properties,log4j.properties,data,logs/server.log}``; the data survives restarts. Jars
go to ``<cache_dir>/kafka-<version>/libs``.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from ops.errors import StackError
from ops.stack.processes import StackState, cmdline, pid_alive, stop_pid
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


def new_cluster_id() -> str:
    """A random KRaft cluster id: 16 random bytes, URL-safe base64 without padding.

    Like Kafka's own ``Uuid.randomUuid``, an id that would begin with ``-`` is drawn again: command-line
    parsers (``kafka-storage format -t``) read such an id as an option and refuse to format.
    """
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate


@dataclass(frozen=True)
class NodeAddress:
    """Where one node of the local cluster listens: node ``n`` takes the first bootstrap port + 2(n-1) for
    clients and the controller port + 2(n-1) for the quorum, so the ports of a cluster never overlap."""

    node_id: int
    host: str
    port: int
    controller_port: int

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"


def node_addresses(settings: Settings, brokers: int | None = None) -> list[NodeAddress]:
    host, port = _host_port(settings.kafka_bootstrap)
    count = brokers or settings.kafka_brokers
    return [
        NodeAddress(n, host, port + 2 * (n - 1), settings.kafka_controller_port + 2 * (n - 1))
        for n in range(1, count + 1)
    ]


def cluster_bootstrap(settings: Settings, brokers: int | None = None) -> str:
    """Every node's address: what clients should be given, so that none depends on one broker being up."""
    return ",".join(a.bootstrap for a in node_addresses(settings, brokers))


class KafkaNode:
    """One broker + controller JVM of the local cluster."""

    def __init__(self, cluster: KafkaCluster, address: NodeAddress):
        self.cluster = cluster
        self.address = address
        self.service = f"kafka-{address.node_id}"
        self.home = cluster.home / f"node-{address.node_id}"

    def write_config(self) -> Path:
        settings, addr = self.cluster.settings, self.address
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        size = len(self.cluster.addresses)
        voters = ",".join(f"{a.node_id}@{a.host}:{a.controller_port}" for a in self.cluster.addresses)
        internal_replicas = str(min(3, size))
        properties = {
            "process.roles": "broker,controller",
            "node.id": str(addr.node_id),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://{addr.host}:{addr.port},CONTROLLER://{addr.host}:{addr.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{addr.host}:{addr.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.home / "data"),
            "num.partitions": str(settings.topic_partitions),
            "default.replication.factor": str(min(settings.topic_replication_factor, size)),
            "offsets.topic.replication.factor": internal_replicas,
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": internal_replicas,
            "transaction.state.log.min.isr": str(min(2, size)),
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "log.retention.hours": "168",
            "log.segment.bytes": str(64 * 1024 * 1024),
            # a replica that stops fetching leaves the ISR after this long, so acks=all writes resume
            "replica.lag.time.max.ms": "10000",
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

    def java(self, *args: str, heap: str | None = None) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise StackError(self.service, "Java 17+ is needed to run the broker")
        opts = [f"-Dlog4j.configuration=file:{self.home / 'log4j.properties'}", "-Djava.awt.headless=true"]
        if heap:
            opts += [f"-Xmx{heap}", f"-Xms{heap}", "-XX:+UseG1GC"]
        return [java, *opts, "-cp", f"{self.cluster.libs}/*", *args]

    def format_storage(self, cluster_id: str) -> None:
        """Format the KRaft log folder on first start only; an existing log (and its topics) is kept."""
        if (self.home / "data" / "meta.properties").is_file():
            return
        result = subprocess.run(
            self.java(
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={cluster_id}",  # one token: an id may begin with "-"
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

    def pid(self) -> int | None:
        pid = self.cluster.state.read().get(self.service)
        return pid if pid is not None and pid_alive(pid) else None

    def ready(self, timeout_ms: int = 3000) -> bool:
        return broker_ready(self.address.bootstrap, timeout_ms)

    def launch(self) -> subprocess.Popen:
        """Start the JVM and return at once: the nodes of a quorum must all be starting before any is ready."""
        self.write_config()
        self.format_storage(self.cluster.cluster_id())
        log = (self.home / "logs" / "stdout.log").open("ab")
        process = subprocess.Popen(
            self.java(MAIN_CLASS, str(self.home / "server.properties"), heap=self.cluster.settings.kafka_heap),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.cluster.state.record(self.service, process.pid)
        return process

    def wait_ready(self, process: subprocess.Popen, deadline: float) -> None:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.cluster.state.forget(self.service)
                raise StackError(self.service, f"broker exited with code {process.returncode}", self.log_tail())
            if self.ready(timeout_ms=2000):
                logger.info("kafka ready", extra={"pid": process.pid, "bootstrap": self.address.bootstrap})
                return
            time.sleep(0.5)
        raise StackError(self.service, "broker not ready in time", self.log_tail())

    def start(self, timeout: float = 90.0) -> str:
        """Start this node alone (a restart after a loss); the rest of the quorum is expected to be up."""
        if self.ready():
            return "already running"
        self.cluster.ensure_jars()
        self.wait_ready(self.launch(), time.monotonic() + timeout)
        return "started"

    def stop(self) -> bool:
        pid = self.cluster.state.read().get(self.service)
        if pid is None:
            return False
        stopped = stop_pid(pid, MAIN_CLASS, timeout=30)
        self.cluster.state.forget(self.service)
        return stopped

    def kill(self) -> bool:
        """SIGKILL, as a crashed machine would: no controlled shutdown, no leader hand-over."""
        pid = self.pid()
        if pid is None or MAIN_CLASS not in cmdline(pid):
            return False
        os.kill(pid, signal.SIGKILL)
        while pid_alive(pid):
            time.sleep(0.05)
        self.cluster.state.forget(self.service)
        return True

    def status(self) -> dict:
        return {
            "bootstrap": self.address.bootstrap,
            "ready": self.ready(),
            "pid": self.pid(),
            "data": str(self.home / "data"),
        }

    def log_tail(self, lines: int = 30) -> str:
        for name in ("server.log", "stdout.log"):
            path = self.home / "logs" / name
            if path.is_file():
                return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        return ""


class KafkaCluster:
    """The local cluster ``stack up`` runs: ``brokers`` nodes, else as many as the cluster on disk was formatted
    with (a KRaft quorum's voters are fixed then), else ``settings.kafka_brokers``."""

    service = "kafka"

    def __init__(self, settings: Settings, brokers: int | None = None):
        self.settings = settings
        self.version = kafka_version()
        self.home = Path(settings.stack_dir).resolve() / "kafka"
        self.libs = Path(settings.cache_dir).resolve() / f"kafka-{self.version}" / "libs"
        self.state = StackState(settings.stack_dir)
        self.formatted_size = int(size.read_text()) if (size := self.home / "brokers").is_file() else None
        self.addresses = node_addresses(settings, brokers or self.formatted_size or settings.kafka_brokers)
        self.nodes = [KafkaNode(self, a) for a in self.addresses]

    @property
    def bootstrap(self) -> str:
        return ",".join(a.bootstrap for a in self.addresses)

    def node(self, node_id: int) -> KafkaNode:
        return self.nodes[node_id - 1]

    def node_at(self, host: str, port: int) -> KafkaNode:
        for node in self.nodes:
            if (node.address.host, node.address.port) == (host, port):
                return node
        raise KeyError(f"no local node listens on {host}:{port}")

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

    def cluster_id(self) -> str:
        """One id for every node (KRaft refuses a quorum of strangers), made on first start and kept."""
        path = self.home / "cluster.id"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(new_cluster_id())
        return path.read_text().strip()

    def start(self, timeout: float = 120.0) -> str:
        """Start every node not answering yet; returns what happened."""
        if self.formatted_size is not None and self.formatted_size != len(self.nodes):
            raise StackError(
                self.service,
                f"the local cluster in {self.home} was formatted with {self.formatted_size} broker(s), not "
                f"{len(self.nodes)}: run `streamscore stack down` and remove that folder to change its size",
            )
        waiting = [node for node in self.nodes if not node.ready()]
        if not waiting:
            return "already running"
        self.ensure_jars()
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "brokers").write_text(str(len(self.nodes)))
        self.formatted_size = len(self.nodes)
        launched = [(node, node.launch()) for node in waiting]
        deadline = time.monotonic() + timeout
        try:
            for node, process in launched:
                node.wait_ready(process, deadline)
        except StackError:
            self.stop()
            raise
        if len(self.nodes) == 1:
            return "started"
        return f"started {len(waiting)} of {len(self.nodes)} brokers ({self.bootstrap})"

    def stop(self) -> bool:
        """Stop every node this stack started (whatever the cluster size was when it started them)."""
        recorded = [key for key in self.state.read() if key.startswith("kafka-")]
        nodes = {n.service: n for n in self.nodes}
        stopped = False
        for key in recorded:
            node = nodes.get(key) or KafkaNode(self, NodeAddress(int(key.split("-")[1]), "", 0, 0))
            stopped = node.stop() or stopped
        return stopped

    def status(self) -> dict:
        return {
            "service": self.service,
            "version": self.version,
            "bootstrap": self.bootstrap,
            "ready": all(node.ready() for node in self.nodes),
            "brokers": {node.address.node_id: node.status() for node in self.nodes},
        }

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(node.log_tail(lines) for node in self.nodes)
