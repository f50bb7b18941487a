"""A local Apache Kafka cluster of 1 or 3 combined broker+controller KRaft nodes on loopback.

Layout under the runtime folder (``--runtime-dir``, default ``~/.local/state/tradeflux``)::

    broker/cluster.json          cluster id, version and the nodes' ports (kept across stop/start)
    broker/node-<id>/server.properties, data/, server.log, pid

Node ``i`` (1-based) listens on ``port + 2*(i-1)`` for clients and the next port for the
controller quorum. Nodes run in their own session, so Ctrl-C of the CLI does not kill them.

``sasl=True``: clients and brokers authenticate with SASL/SCRAM-SHA-512, the controller
quorum with SASL/PLAIN (SCRAM credentials live in the metadata the controllers serve, so
they cannot authenticate the controllers themselves), and the KRaft StandardAuthorizer
allows nothing without an ACL. ``admin`` (and the controllers' ``controller``) are super
users; one SCRAM user per tradeflux process (:data:`SASL_USERS`) is created at start.
Passwords are random, in ``broker/credentials.json`` (0600; the nodes' properties, which
hold the admin's, are 0600 too).

By default every node listens on 127.0.0.1. A fault test can instead place each node on a
host of its own (:class:`NodeHost`: an address for clients and brokers, one for the
controller quorum, and a command prefix such as ``ip netns exec NAME`` that runs the JVM
there), so that the links between nodes can be cut; :func:`stop_node` and
:func:`start_node` restart one node of a running cluster.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from importlib import resources
from pathlib import Path

from tradeflux.broker.acl_admin import upsert_scram_users
from tradeflux.broker.admin import admin
from tradeflux.broker.errors import BrokerError, PortInUseError
from tradeflux.broker.jars import fetch_kafka, find_java, pinned_kafka_version
from tradeflux.config import Settings
from tradeflux.services import SHIPPED
from tradeflux.stream.errors import KafkaClientError

HOST = "127.0.0.1"
SASL_MECHANISM = "SCRAM-SHA-512"
SASL_USERS = (*SHIPPED, "gateway", "query", "simulator", "refdata", "ticker")
"""The SCRAM users ``--sasl`` creates: each shipped service, the edges, the loaders."""
ADMIN_USER = "admin"
_CONTROLLER_USER = "controller"
_VERSION_RE = re.compile(r"Kafka version: (\S+)")
_COMMIT_RE = re.compile(r"Kafka commitId: (\S+)")


@dataclass(frozen=True)
class NodeHost:
    """Where one node runs: its own addresses and the command prefix that starts it there.

    ``address`` serves clients and the other brokers, ``controller_address`` the KRaft
    quorum; ``launcher`` is prepended to the JVM's command line (e.g.
    ``("ip", "netns", "exec", "tf-b1")``) and must exec the command, keeping the pid.
    """

    address: str
    controller_address: str
    launcher: tuple[str, ...] = ()


@dataclass(frozen=True)
class Node:
    """One broker+controller process of the local cluster."""

    node_id: int
    port: int
    controller_port: int
    folder: str
    host: str = HOST
    controller_host: str = HOST
    launcher: tuple[str, ...] = ()

    @property
    def path(self) -> Path:
        """Return this node's folder."""
        return Path(self.folder)

    @property
    def log_file(self) -> Path:
        """Return the file the node's stdout and stderr go to."""
        return self.path / "server.log"

    @property
    def pid_file(self) -> Path:
        """Return the file holding the node's process id while it runs."""
        return self.path / "pid"


@dataclass(frozen=True)
class LocalCluster:
    """A local cluster's identity and layout, as kept in ``cluster.json``."""

    cluster_id: str
    kafka_version: str
    heap: str
    nodes: tuple[Node, ...]
    sasl: bool = False

    @property
    def bootstrap(self) -> str:
        """Return the bootstrap servers of all nodes, comma separated."""
        return ",".join(f"{n.host}:{n.port}" for n in self.nodes)


ONE_BATCH_REPLICA_FETCHES = {"replica.fetch.max.bytes": "1", "num.replica.fetchers": "8"}
"""Broker ``overrides`` that work around a Kafka 4.4.0 defect on clusters of several nodes.

A follower that completes several transactions in one append (one replica fetch) indexes
too high a last stable offset for them; once it leads, read_committed fetches can skip a
later aborted transaction and deliver its records as committed (seen in the fault soak
after a rolling restart; tests/fault/test_follower_txn_index.py shows it). With a limit of
one byte the leader answers one whole batch per replica fetch: only the first partition
with data may exceed the limit (ReplicaManager.readFromLocalLog), the others get nothing.
So an append completes at most one transaction. The cost: a follower catching up needs a
round trip per batch of all its partitions together; eight fetcher threads per leader
(``num.replica.fetchers``, each with its share of the partitions) take eight at a time.
Without them, in soak run 7, the rolling restart was not back in full ISR within 600 s.
(The fault suite's short form with one fetcher: a killed node back in every ISR after 215
s, with other fault tests beside it; 44 s without the workaround, alone.) So
local clusters do not set it unless asked; the soak does.
"""


def broker_dir(settings: Settings) -> Path:
    """Return the folder holding the local cluster's files."""
    return settings.runtime_dir / "broker"


def load_cluster(settings: Settings) -> LocalCluster | None:
    """Return the local cluster recorded under the runtime folder, if any."""
    path = broker_dir(settings) / "cluster.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    nodes = tuple(
        Node(**{**n, "launcher": tuple(n.get("launcher", ()))}) for n in data.pop("nodes")
    )
    return LocalCluster(nodes=nodes, **data)


def credentials_file(settings: Settings) -> Path:
    """Return the file of the SASL users' passwords of a ``--sasl`` cluster (0600)."""
    return broker_dir(settings) / "credentials.json"


def load_credentials(settings: Settings) -> dict[str, str]:
    """Return ``user -> password`` of the local SASL cluster ({} if it has none)."""
    path = credentials_file(settings)
    if not path.exists():
        return {}
    data: dict[str, str] = json.loads(path.read_text())
    return data


def sasl_client_config(user: str, password: str) -> dict[str, str]:
    """Return the librdkafka settings of a SASL/SCRAM user of the local cluster."""
    return {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": SASL_MECHANISM,
        "sasl.username": user,
        "sasl.password": password,
    }


def sasl_environment(user: str, password: str) -> dict[str, str]:
    """Return the TRADEFLUX_KAFKA_* variables a process of ``user`` needs."""
    return {
        f"TRADEFLUX_KAFKA_{k.upper().replace('.', '_')}": v
        for k, v in sasl_client_config(user, password).items()
    }


def _write_secret(path: Path, text: str) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)


def _new_credentials() -> dict[str, str]:
    import secrets

    users = (ADMIN_USER, _CONTROLLER_USER, *SASL_USERS)
    return {user: secrets.token_hex(16) for user in users}


def _save_cluster(settings: Settings, cluster: LocalCluster) -> None:
    path = broker_dir(settings) / "cluster.json"
    path.write_text(json.dumps(asdict(cluster), indent=2) + "\n")


def node_pid(node: Node) -> int | None:
    """Return the pid of the node's java process if it is running, else None."""
    try:
        pid = int(node.pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    # Guard against pid reuse: it must be *our* kafka.Kafka for this node.
    if b"kafka.Kafka" not in cmdline or str(node.path).encode() not in cmdline:
        return None
    return pid


def running_pids(settings: Settings) -> list[int]:
    """Return the pids of the local cluster's running nodes."""
    cluster = load_cluster(settings)
    if cluster is None:
        return []
    return [pid for node in cluster.nodes if (pid := node_pid(node)) is not None]


def _new_cluster_id() -> str:
    """Return a KRaft cluster id: a random UUID in URL-safe base64 without padding."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        # Like Kafka's Uuid.randomUuid: an id starting with "-" reads as a command-line
        # option (the storage tool then fails with "expected one argument"), 1 time in 64.
        if not cluster_id.startswith("-"):
            return cluster_id


def _check_port_free(port: int) -> None:
    """Raise PortInUseError unless the broker will be able to listen on ``port``.

    SO_REUSEADDR as the JVM sets it: connections of a node that just stopped linger in
    TIME_WAIT on its ports and do not keep a new node from listening there.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            raise PortInUseError(
                f"port {port} on {HOST} is already in use by another process; stop it, "
                f"or start the broker on other ports with --port N (it needs N..N+1 per node)"
            ) from None


def _properties(
    node: Node, cluster: LocalCluster, credentials: dict[str, str], overrides: dict[str, str]
) -> str:
    count = len(cluster.nodes)
    rf = min(3, count)
    isr = 2 if count >= 3 else 1
    voters = ",".join(f"{n.node_id}@{n.controller_host}:{n.controller_port}" for n in cluster.nodes)
    listeners = (
        f"PLAINTEXT://{node.host}:{node.port},"
        f"CONTROLLER://{node.controller_host}:{node.controller_port}"
    )
    props: dict[str, object] = {
        "process.roles": "broker,controller",
        "node.id": node.node_id,
        "controller.quorum.voters": voters,
        "listeners": listeners,
        "advertised.listeners": f"PLAINTEXT://{node.host}:{node.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(node.path / "data"),
        "auto.create.topics.enable": "false",
        "num.partitions": 6,
        "default.replication.factor": rf,
        "min.insync.replicas": isr,
        "offsets.topic.replication.factor": rf,
        "offsets.topic.num.partitions": 12,
        "transaction.state.log.replication.factor": rf,
        "transaction.state.log.min.isr": isr,
        "transaction.state.log.num.partitions": 12,
        "share.coordinator.state.topic.replication.factor": rf,
        "share.coordinator.state.topic.min.isr": isr,
        "group.initial.rebalance.delay.ms": 0,
        "unclean.leader.election.enable": "false",
        "log.retention.hours": 24,
        # Every node of a local cluster shares one machine's cores. At the default 2 s, a
        # controller starved for CPU by the others (and by the services) misses a fetch,
        # the quorum leader resigns and the metadata stalls for an election every half
        # minute (seen in the fault soak on 2 cores). 10 s rides that out; a node cut off
        # the quorum is still replaced about 10 s after it.
        "controller.quorum.fetch.timeout.ms": 10_000,
        **overrides,
    }
    if cluster.sasl:
        props.update(_sasl_properties(node, credentials))
    return "".join(f"{k}={v}\n" for k, v in props.items())


def _sasl_properties(node: Node, credentials: dict[str, str]) -> dict[str, object]:
    """SCRAM for clients and brokers, PLAIN for the controllers, the StandardAuthorizer."""
    admin, controller = credentials[ADMIN_USER], credentials[_CONTROLLER_USER]
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
    plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
    return {
        "listeners": (
            f"CLIENT://{node.host}:{node.port},"
            f"CONTROLLER://{node.controller_host}:{node.controller_port}"
        ),
        "advertised.listeners": f"CLIENT://{node.host}:{node.port}",
        "inter.broker.listener.name": "CLIENT",
        "listener.security.protocol.map": "CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": SASL_MECHANISM,
        "listener.name.client.sasl.enabled.mechanisms": SASL_MECHANISM,
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "sasl.mechanism.inter.broker.protocol": SASL_MECHANISM,
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.client.scram-sha-512.sasl.jaas.config": (
            f'{scram} required username="{ADMIN_USER}" password="{admin}";'
        ),
        "listener.name.controller.plain.sasl.jaas.config": (
            f'{plain} required username="{_CONTROLLER_USER}" password="{controller}" '
            f'user_{_CONTROLLER_USER}="{controller}";'
        ),
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": f"User:{ADMIN_USER};User:{_CONTROLLER_USER}",
        "allow.everyone.if.no.acl.found": "false",
    }


def admin_settings(settings: Settings, cluster: LocalCluster) -> Settings:
    """Return settings that reach the local cluster as its admin (SASL) or plainly."""
    kafka: dict[str, str] = {}
    if cluster.sasl:
        kafka = sasl_client_config(ADMIN_USER, load_credentials(settings)[ADMIN_USER])
    return replace(settings, bootstrap=cluster.bootstrap, kafka=kafka)


def _java_command(java: str, libs: Path, heap: str, log4j: Path, main: str) -> list[str]:
    return [
        java,
        f"-Xmx{heap}",
        "-Xms128m",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j}",
        "-cp",
        f"{libs}/*",
        main,
    ]


def _last_error(log_file: Path) -> str:
    """Return the most telling line of a node's log, for a failed start."""
    try:
        lines = log_file.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "no log written"
    for line in reversed(lines):
        if " ERROR " in line or "Exception" in line:
            return line.strip()[:300]
    return lines[-1].strip()[:300] if lines else "empty log"


def start_cluster(
    settings: Settings,
    nodes: int = 1,
    port: int = 9092,
    fresh: bool = False,
    timeout_s: float = 90.0,
    on_artifact: Callable[[str], None] | None = None,
    sasl: bool = False,
    hosts: Sequence[NodeHost] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> LocalCluster:
    """Start (formatting on first use) a local cluster and return once every node answers.

    ``sasl``: SASL/SCRAM with the StandardAuthorizer (see the module doc); the SCRAM users
    of :data:`SASL_USERS` exist when this returns. ``hosts`` (one per node, for a fresh
    cluster) places the nodes on hosts of their own instead of loopback; ``overrides`` are
    broker properties set on every node (a fresh cluster's only).

    Raises BrokerError subclasses with one-line messages: java missing, Maven failure,
    a port in use, a cluster already running, a node that died while starting.
    """
    if nodes not in (1, 3):
        raise BrokerError(f"--nodes must be 1 or 3, got {nodes}")
    if hosts is not None and len(hosts) != nodes:
        raise BrokerError(f"{nodes} node(s) need as many hosts, got {len(hosts)}")
    java = find_java()
    if running_pids(settings):
        cluster = load_cluster(settings)
        bootstrap = cluster.bootstrap if cluster else "?"
        raise BrokerError(
            f"a local tradeflux broker is already running at {bootstrap} "
            f"(runtime folder {settings.runtime_dir}); stop it with `tradeflux broker stop`"
        )
    version = settings.kafka_version or pinned_kafka_version()
    folder = broker_dir(settings)
    cluster = load_cluster(settings)
    wanted_ports = [port + 2 * i for i in range(nodes)]
    if cluster is not None and not fresh:
        same = [n.port for n in cluster.nodes] == wanted_ports and cluster.kafka_version == version
        same = same and cluster.sasl == sasl
        if not same:
            raise BrokerError(
                f"the local cluster in {folder} has {len(cluster.nodes)} node(s) on port(s) "
                f"{[n.port for n in cluster.nodes]} with Kafka {cluster.kafka_version}"
                f"{' and SASL' if cluster.sasl else ''}; start it "
                "with those options, or pass --fresh to wipe it and start anew"
            )
    if hosts is None:  # on hosts of their own, the ports are free by construction
        for p in wanted_ports:
            _check_port_free(p)
            _check_port_free(p + 1)
    libs = fetch_kafka(settings.cache_dir, version, on_artifact)
    log4j = _log4j()
    if cluster is None or fresh:
        if folder.exists():
            _wipe(folder)
        folder.mkdir(parents=True, exist_ok=True)
        places = hosts or [NodeHost(HOST, HOST)] * nodes
        layout = tuple(
            Node(
                i + 1, p, p + 1, str(folder / f"node-{i + 1}"),
                place.address, place.controller_address, tuple(place.launcher),
            )
            for i, (p, place) in enumerate(zip(wanted_ports, places, strict=True))
        )  # fmt: skip
        cluster = LocalCluster(_new_cluster_id(), version, settings.broker_heap, layout, sasl)
        credentials = _new_credentials() if sasl else {}
        if sasl:
            _write_secret(credentials_file(settings), json.dumps(credentials, indent=2) + "\n")
        for node in cluster.nodes:
            node.path.mkdir(parents=True)
            props = node.path / "server.properties"
            _write_secret(props, _properties(node, cluster, credentials, dict(overrides or {})))
            cmd = _java_command(java, libs, "256m", log4j, "kafka.tools.StorageTool")
            scram = []
            if sasl:  # the admin exists before the first start: the brokers log in as it
                admin = credentials[ADMIN_USER]
                scram = ["--add-scram", f"{SASL_MECHANISM}=[name={ADMIN_USER},password={admin}]"]
            fmt = subprocess.run(
                [*cmd, "format", f"--cluster-id={cluster.cluster_id}", "-c", str(props), *scram],
                capture_output=True,
                text=True,
                check=False,
            )
            if fmt.returncode != 0:
                reason = (fmt.stderr or fmt.stdout).strip().splitlines()
                raise BrokerError(
                    f"formatting KRaft storage of node {node.node_id} failed: "
                    f"{reason[-1] if reason else 'no output'}"
                )
        _save_cluster(settings, cluster)
    procs = {node.node_id: _launch(node, java, libs, cluster.heap, log4j) for node in cluster.nodes}
    _wait_until_ready(settings, cluster, procs, timeout_s)
    if cluster.sasl:
        users = {u: p for u, p in load_credentials(settings).items() if u in SASL_USERS}
        upsert_scram_users(admin_settings(settings, cluster), users)
    return cluster


def _log4j() -> Path:
    return Path(str(resources.files("tradeflux.broker").joinpath("log4j2.yaml")))


def _launch(node: Node, java: str, libs: Path, heap: str, log4j: Path) -> subprocess.Popen[bytes]:
    """Start one node's JVM (through its host's launcher) and record its pid."""
    cmd = _java_command(java, libs, heap, log4j, "kafka.Kafka")
    with node.log_file.open("ab") as log:
        proc = subprocess.Popen(
            [*node.launcher, *cmd, str(node.path / "server.properties")],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    node.pid_file.write_text(f"{proc.pid}\n")
    return proc


def start_node(settings: Settings, node_id: int, timeout_s: float = 90.0) -> int:
    """Start one stopped node of the recorded cluster again; return its pid once it answers.

    For fault tests and rolling restarts: the other nodes keep running, whatever
    happens to this one. Returns when the node's listener accepts connections and the
    cluster's metadata lists it. (Metadata alone is not enough: a node SIGKILLed a few
    seconds ago is still listed until the controller's broker session times out.)
    """
    cluster = load_cluster(settings)
    if cluster is None:
        raise BrokerError(f"no local cluster under {broker_dir(settings)}; start one first")
    node = _node(cluster, node_id)
    if node_pid(node) is not None:
        raise BrokerError(f"node {node_id} is already running")
    libs = fetch_kafka(settings.cache_dir, cluster.kafka_version)
    proc = _launch(node, find_java(), libs, cluster.heap, _log4j())
    client = admin(admin_settings(settings, cluster))
    deadline = time.monotonic() + timeout_s
    while True:
        code = proc.poll()
        if code is not None:
            raise BrokerError(
                f"broker node {node_id} exited with code {code} while starting: "
                f"{_last_error(node.log_file)} (full log: {node.log_file})"
            )
        if not _accepts(node.host, node.port):
            last = f"nothing accepts connections at {node.host}:{node.port}"
        else:
            try:
                listed = {b[0] for b in client.metadata(5.0, topics=()).brokers}
            except KafkaClientError as exc:
                last = f"the cluster's metadata did not answer: {exc}"
            else:
                if node_id in listed:
                    return proc.pid
                last = f"the cluster lists nodes {sorted(listed)}, not {node_id}"
        if time.monotonic() > deadline:
            raise BrokerError(
                f"broker node {node_id} did not register within {timeout_s:g}s ({last}); "
                f"see {node.log_file}"
            )
        time.sleep(0.2)


def _accepts(host: str, port: int) -> bool:
    """Tell whether something listens on ``host:port`` (a TCP connection is accepted)."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def stop_node(cluster: LocalCluster, node_id: int, grace_s: float = 60.0) -> int:
    """SIGTERM one node (a controlled shutdown), SIGKILL it after ``grace_s``; return its pid."""
    node = _node(cluster, node_id)
    pid = node_pid(node)
    if pid is None:
        raise BrokerError(f"node {node_id} is not running")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _wait_dead(pid)
    node.pid_file.unlink(missing_ok=True)
    return pid


def _node(cluster: LocalCluster, node_id: int) -> Node:
    for node in cluster.nodes:
        if node.node_id == node_id:
            return node
    raise BrokerError(f"the local cluster has no node {node_id}")


def _wait_until_ready(
    settings: Settings,
    cluster: LocalCluster,
    procs: dict[int, subprocess.Popen[bytes]],
    timeout_s: float,
) -> None:
    """Wait until a metadata request lists every node, or fail with the reason.

    Whether a node died is asked of its process handle, which also gives the exit
    code (a negative one names the signal), rather than guessed from the pid file
    and /proc: once in CI a node was reported "exited while starting" with an empty
    log, and the guess could not say how it ended.
    """
    client = admin(admin_settings(settings, cluster))
    deadline = time.monotonic() + timeout_s
    while True:
        for node in cluster.nodes:
            code = procs[node.node_id].poll()
            if code is not None:
                _stop_nodes(cluster, grace_s=5.0)
                raise BrokerError(
                    f"broker node {node.node_id} exited with code {code} while starting: "
                    f"{_last_error(node.log_file)} (full log: {node.log_file})"
                )
        try:
            if len(client.metadata(2.0, topics=()).brokers) == len(cluster.nodes):
                return
        except KafkaClientError:
            pass
        if time.monotonic() > deadline:
            _stop_nodes(cluster, grace_s=5.0)
            raise BrokerError(
                f"the local broker did not answer within {timeout_s:g}s; "
                f"see {cluster.nodes[0].log_file}"
            )
        time.sleep(0.2)


def _wipe(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
        else:
            path.unlink()
    folder.rmdir()


def _stop_nodes(cluster: LocalCluster, grace_s: float) -> list[int]:
    """SIGTERM every running node, wait up to ``grace_s``, SIGKILL what is left."""
    pids = {node.node_id: pid for node in cluster.nodes if (pid := node_pid(node)) is not None}
    for pid in pids.values():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while any(_alive(pid) for pid in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids.values():
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    for pid in pids.values():
        _reap(pid)
    for node in cluster.nodes:
        node.pid_file.unlink(missing_ok=True)
    return sorted(pids.values())


def _alive(pid: int) -> bool:
    """Tell whether ``pid`` is a live (not zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _reap(pid: int) -> None:
    """Collect a child's exit status, if it was our child, so no zombie is left."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop_cluster(settings: Settings, grace_s: float = 60.0) -> list[int]:
    """Stop every node of the local cluster; return the pids that were stopped."""
    cluster = load_cluster(settings)
    if cluster is None:
        return []
    return _stop_nodes(cluster, grace_s)


def kill_node(cluster: LocalCluster, node_id: int) -> int:
    """SIGKILL one node (for fault tests) and return its pid."""
    node = _node(cluster, node_id)
    pid = node_pid(node)
    if pid is None:
        raise BrokerError(f"node {node_id} is not running")
    os.kill(pid, signal.SIGKILL)
    _wait_dead(pid)
    node.pid_file.unlink(missing_ok=True)
    return pid


def _wait_dead(pid: int, timeout_s: float = 10.0) -> None:
    """Wait until ``pid`` is gone (reaping it if it is our child)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap(pid)
        if not _alive(pid):
            return
        time.sleep(0.05)


def reported_version(node: Node) -> tuple[str, str] | None:
    """Return (version, commit id) as the node printed them at its last start."""
    version = commit = None
    with contextlib.suppress(FileNotFoundError):
        for line in node.log_file.read_text(errors="replace").splitlines():
            if (m := _VERSION_RE.search(line)) and "AppInfoParser" in line:
                version = m.group(1)
            elif (m := _COMMIT_RE.search(line)) and "AppInfoParser" in line:
                commit = m.group(1)
    return (version, commit or "?") if version else None


def tail_log(node: Node, lines: int) -> Iterator[str]:
    """Yield the last ``lines`` lines of a node's log."""
    try:
        text = node.log_file.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return
    yield from text[-lines:]
