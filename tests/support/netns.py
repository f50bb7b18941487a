"""Hosts on one machine: Linux network namespaces on a bridge, and links a test can cut.

A :class:`Network` is a switch namespace holding two bridges, the *data* plane (clients,
services, replication between brokers) and the *controller* plane (the KRaft quorum),
and one namespace per host, wired to the bridges by veth pairs (``eth0`` on the data
plane, ``eth1`` on the controller plane for a broker). The test process itself stays in
the root namespace and reaches the data plane through one veth of its own, so it can
produce, read and administer; nothing else of the root namespace is touched, and every
address the test talks to belongs to a namespace it made.

A cut drops packets on arrival, silently, as a pulled cable or a dead switch port
does: ``ip rule ... iif ethN blackhole`` in the receiving namespace, in both
directions, so an established connection hangs and a new one times out (a route or a
link set down would answer at once with EINVAL or "no route to host", which is not
how a partition looks to a client). To see an arriving packet before it is delivered,
each host's ``local`` routing rule moves from priority 0 to 1000; cut rules sit at 100
and up. Healing deletes the rules.

Needs root (``ip netns``) and no tc/netem or iptables. Every name starts with
``tfn<pid>-``: a run sweeps the namespaces of runs whose process is gone, and always
deletes its own at the end (their veths go with them).
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
import random
import re
import signal
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

NAME_PREFIX = "tfn"
_OWNED = re.compile(rf"^{NAME_PREFIX}(\d+)-")


class NetnsError(RuntimeError):
    """An ``ip`` command failed while building or cutting the test network."""


def ip(*args: str, check: bool = True) -> str:
    """Run ``ip ARGS`` and return its output; raise NetnsError with its message on failure."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def available() -> str | None:
    """Return why namespaces cannot be used here (not root, no ``ip``), or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    try:
        ip("netns", "list")
    except (FileNotFoundError, NetnsError) as exc:
        return f"`ip netns` does not work here: {exc}"
    return None


def sweep_stale() -> list[str]:
    """Delete the namespaces of earlier runs whose process is gone; return their names.

    Processes still inside them are what a crashed run left behind (its brokers and
    services): they are killed by pid first, or the namespace would live on in them.
    """
    gone = []
    for name in _namespaces():
        match = _OWNED.match(name)
        if match is None or _pid_alive(int(match.group(1))):
            continue
        _kill_inside(name)
        ip("netns", "del", name, check=False)
        gone.append(name)
    return gone


def _namespaces() -> list[str]:
    return [line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_inside(namespace: str) -> None:
    for pid in ip("netns", "pids", namespace, check=False).split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


@dataclass(frozen=True)
class Host:
    """One host: a namespace, its data-plane address and, for a broker, its controller one."""

    name: str
    namespace: str
    address: str
    controller_address: str | None = None

    @property
    def launcher(self) -> tuple[str, ...]:
        """Return the command prefix that runs a program on this host (it execs: same pid)."""
        return ("ip", "netns", "exec", self.namespace)


DATA, CONTROLLER = "eth0", "eth1"


@dataclass
class Cut:
    """Drop rules in force: (namespace, priority) pairs, removed by :meth:`heal`."""

    network: Network
    what: str
    rules: list[tuple[str, int]] = field(default_factory=list)
    healed: bool = False

    def heal(self) -> None:
        """Remove this cut's rules (idempotent)."""
        if self.healed:
            return
        for namespace, pref in self.rules:
            ip("-n", namespace, "rule", "del", "pref", str(pref), check=False)
        self.healed = True
        self.network.cuts.remove(self)


class Network:
    """The switch, the hosts and the cuts of one test run; use :func:`network`."""

    def __init__(self) -> None:
        self.tag = f"{NAME_PREFIX}{os.getpid()}"
        self.switch = f"{self.tag}-sw"
        self.root_link = self.tag  # at most 15 characters: "tfn" and a pid
        self.data_net, self.controller_net = _free_subnets()
        self.hosts: dict[str, Host] = {}
        self.cuts: list[Cut] = []
        self._addresses = {DATA: self.data_net.hosts(), CONTROLLER: self.controller_net.hosts()}
        self._prefs = itertools.count(100)
        self._links = itertools.count(1)
        self.client_address = ""

    # -- building ------------------------------------------------------------------------

    def create(self) -> None:
        """Make the switch and the root namespace's link to the data plane."""
        ip("netns", "add", self.switch)
        for bridge in ("br0", "br1"):
            ip("-n", self.switch, "link", "add", bridge, "type", "bridge")
            ip("-n", self.switch, "link", "set", bridge, "up")
        ip("link", "add", self.root_link, "type", "veth", "peer", "name", "r0",
           "netns", self.switch)  # fmt: skip
        ip("-n", self.switch, "link", "set", "r0", "master", "br0", "up")
        self.client_address = str(self.data_net.broadcast_address - 1)
        ip("addr", "add", f"{self.client_address}/{self.data_net.prefixlen}", "dev", self.root_link)
        ip("link", "set", self.root_link, "up")

    def add_host(self, name: str, controller: bool = False) -> Host:
        """Make host ``name`` on the data plane (and the controller plane if ``controller``)."""
        namespace = f"{self.tag}-{name}"
        ip("netns", "add", namespace)
        ip("-n", namespace, "link", "set", "lo", "up")
        address = self._wire(namespace, DATA, "br0", self.data_net)
        controller_address = (
            self._wire(namespace, CONTROLLER, "br1", self.controller_net) if controller else None
        )
        # Rules are matched before local delivery only once the local rule comes later.
        ip("-n", namespace, "rule", "add", "pref", "1000", "lookup", "local")
        ip("-n", namespace, "rule", "del", "pref", "0")
        host = Host(name, namespace, address, controller_address)
        self.hosts[name] = host
        return host

    def _wire(self, namespace: str, iface: str, bridge: str, net: ipaddress.IPv4Network) -> str:
        port = f"p{next(self._links)}"
        address = str(next(self._addresses[iface]))
        ip("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", iface,
           "netns", namespace)  # fmt: skip
        ip("-n", self.switch, "link", "set", port, "master", bridge, "up")
        ip("-n", namespace, "addr", "add", f"{address}/{net.prefixlen}", "dev", iface)
        ip("-n", namespace, "link", "set", iface, "up")
        return address

    def destroy(self) -> None:
        """Kill what still runs in the namespaces, then delete them (hosts first)."""
        for host in self.hosts.values():
            _kill_inside(host.namespace)
            ip("netns", "del", host.namespace, check=False)
        ip("netns", "del", self.switch, check=False)
        ip("link", "del", self.root_link, check=False)  # gone with its peer, normally

    # -- cutting -------------------------------------------------------------------------

    def _drop(self, cut: Cut, at: Host, iface: str, source: str | None) -> None:
        pref = next(self._prefs)
        spec = ["from", source] if source else []
        ip("-n", at.namespace, "rule", "add", "pref", str(pref), *spec, "iif", iface, "blackhole")
        cut.rules.append((at.namespace, pref))

    def isolate(self, host: Host, peers: Iterable[Host]) -> Cut:
        """Cut ``host`` off the data plane: nothing reaches it, nothing of it reaches ``peers``."""
        cut = Cut(self, f"{host.name} isolated")
        self.cuts.append(cut)
        self._drop(cut, host, DATA, None)
        for peer in peers:
            self._drop(cut, peer, DATA, host.address)
        return cut

    def split(self, host: Host, others: Sequence[Host], plane: str = DATA) -> Cut:
        """Cut the links between ``host`` and each of ``others`` on ``plane`` (both ways).

        On the data plane the rest of the network (clients, services) still reaches
        ``host``; on the controller plane ``host`` leaves the quorum, still serving clients.
        """
        cut = Cut(self, f"{host.name} split from {','.join(o.name for o in others)} on {plane}")
        self.cuts.append(cut)
        for other in others:
            theirs = other.address if plane == DATA else other.controller_address
            mine = host.address if plane == DATA else host.controller_address
            assert theirs and mine, f"{plane} needs controller hosts"
            self._drop(cut, host, plane, theirs)
            self._drop(cut, other, plane, mine)
        return cut

    def heal_all(self) -> None:
        """Heal every cut still in force."""
        for cut in list(self.cuts):
            cut.heal()


def _free_subnets() -> tuple[ipaddress.IPv4Network, ipaddress.IPv4Network]:
    """Two /24s of 10.0.0.0/8 that no route or address of the root namespace overlaps.

    Only the data plane's is ever seen there (through the root's link); the controller
    plane's is checked too so that it can never shadow a real network in a namespace.
    """
    taken = []
    for line in (
        ip("-4", "route", "show", "table", "all").splitlines()
        + ip("-4", "-o", "addr", "show").splitlines()
    ):
        for word in line.split():
            with contextlib.suppress(ValueError):
                if "/" in word or word.count(".") == 3:
                    taken.append(ipaddress.ip_network(word, strict=False))
    rng = random.Random()
    for _ in range(1000):
        second, third = rng.randrange(200, 250), rng.randrange(0, 255, 2)
        pair = (
            ipaddress.ip_network(f"10.{second}.{third}.0/24"),
            ipaddress.ip_network(f"10.{second}.{third + 1}.0/24"),
        )
        if not any(net.overlaps(t) for net in pair for t in taken if t.prefixlen > 0):
            return pair
    raise NetnsError("no free 10.x.y.0/24 pair for the test network")


@contextlib.contextmanager
def network() -> Iterator[Network]:
    """A test network of its own, swept of stale runs first and always destroyed after."""
    reason = available()
    if reason:
        raise NetnsError(reason)
    sweep_stale()
    net = Network()
    try:
        net.create()
        yield net
    finally:
        net.destroy()
