"""The FIX acceptor's front door: TLS, a bind address, framing and logon checks, a connection cap.

The FIX engine (QuickFIX 1.16, the C++ engine of the pip package) is built without SSL
(its SSL classes throw "HAVE_SSL not enabled") and listens on every interface with no
bind-address setting, giving each connection a thread of its own from accept on. So it
listens on a loopback port of its own, and callers reach it only through this asyncio
server, on the address and port the operator chose:

- TLS (``ssl``; TLS 1.2 or newer), optionally a client certificate from a given CA whose
  CN or a DNS name equals the session's SenderCompID;
- FIX framing, checked before a byte reaches the engine: ``8=FIX.4.4``, ``9=`` BodyLength
  (at most ``max_message_bytes``: a larger one is refused as soon as it is read, not
  buffered), ``10=`` CheckSum; so the engine's parser never buffers a huge message;
- the first message must be a Logon from an allowed SenderCompID to ours, within
  ``logon_timeout_s`` of the connection (the TLS handshake included); until then nothing
  reaches the engine, so a connection that never logs on costs no engine thread;
- at most ``max_connections`` connections at once (logged on or not); one more is closed
  at once.

What stops a caller from skipping the door and reaching the engine's own port: the
engine's listening socket gets a kernel socket filter (``SO_ATTACH_FILTER``, locked)
that drops every packet whose source is not 127.0.0.0/8; every session allows Logons
only from 127.0.0.1 (QuickFIX's ``AllowedRemoteAddresses``); and the door writes a
secret of this process (random at each start) into each Logon it passes on, as its
Password (554), which the application checks (``DropCopyApplication.fromAdmin``), so a
Logon straight to the engine port, even from loopback, is refused. The engine's message
log records that Password; its folder is the owner's only (0700).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import socket
import ssl
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tradeflux.errors import TradefluxError

log = logging.getLogger("tradeflux.gateway.fix")

SOH = b"\x01"
_BEGIN_STRING = b"8=FIX.4.4\x01"
_MAX_BODY_LENGTH_DIGITS = 9
_READ_BYTES = 64 * 1024
_SO_ATTACH_FILTER = 26  # Linux asm-generic/socket.h; the socket module does not export it
_SO_LOCK_FILTER = 44
_SKF_NET_OFF = -0x100000
_PASSWORD = 554


class FramingError(ValueError):
    """The bytes are no FIX 4.4 message within the limits; the reason is one line."""


class FixDoorError(TradefluxError):
    """The FIX front door cannot start (port in use, bad TLS files, ...)."""


def checksum(data: bytes) -> int:
    """Return the FIX CheckSum of ``data``: the sum of its bytes modulo 256."""
    return sum(data) % 256


class FixFramer:
    """Splits a byte stream into whole FIX 4.4 messages, checking each before it is passed on.

    Holds at most one message's bytes (``max_message_bytes`` plus its header and trailer):
    a BodyLength over the limit is refused as soon as its digits are read.
    """

    def __init__(self, max_message_bytes: int) -> None:
        self.max_message_bytes = max_message_bytes
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data``; return the messages it completed, or raise FramingError."""
        self._buffer += data
        out: list[bytes] = []
        while True:
            message = self._next()
            if message is None:
                return out
            out.append(message)

    def _next(self) -> bytes | None:
        buf = self._buffer
        prefix = _BEGIN_STRING[: len(buf)]
        if bytes(buf[: len(_BEGIN_STRING)]) != prefix:
            raise FramingError("not a FIX.4.4 message (BeginString 8=FIX.4.4 expected)")
        if len(buf) < len(_BEGIN_STRING) + 2:
            return None
        start = len(_BEGIN_STRING)
        if buf[start : start + 2] != b"9=":
            raise FramingError("BodyLength (9=) must follow BeginString")
        end = buf.find(SOH, start + 2, start + 3 + _MAX_BODY_LENGTH_DIGITS)
        if end < 0:
            digits = bytes(buf[start + 2 :])
            if len(digits) > _MAX_BODY_LENGTH_DIGITS or (digits and not digits.isdigit()):
                raise FramingError("BodyLength is not a number of at most 9 digits")
            return None
        digits = bytes(buf[start + 2 : end])
        if not digits.isdigit():
            raise FramingError(f"BodyLength {digits[:20]!r} is not a number")
        body_length = int(digits)
        if body_length > self.max_message_bytes:
            raise FramingError(
                f"BodyLength {body_length} is over the limit of {self.max_message_bytes} bytes"
            )
        body_start = end + 1
        trailer = body_start + body_length
        total = trailer + 7  # 10=NNN<SOH>
        if len(buf) < total:
            return None
        if buf[trailer : trailer + 3] != b"10=" or buf[total - 1 : total] != SOH:
            raise FramingError("CheckSum (10=) is not where BodyLength says the body ends")
        declared = bytes(buf[trailer + 3 : total - 1])
        if not declared.isdigit() or int(declared) != checksum(bytes(buf[:trailer])):
            raise FramingError(f"CheckSum {declared.decode(errors='replace')} does not match")
        message = bytes(buf[:total])
        del buf[:total]
        return message


def with_field(message: bytes, tag: int, value: bytes) -> bytes:
    """Return ``message`` with ``tag`` set to ``value`` (replaced, or added before CheckSum).

    BodyLength and CheckSum are computed anew; the message must be one ``FixFramer`` passed.
    """
    parts = message.split(SOH)[:-1]  # the message ends with SOH
    body = [p for p in parts[2:-1] if not p.startswith(b"%d=" % tag)]
    body.append(b"%d=%s" % (tag, value))
    payload = SOH.join(body) + SOH
    head = parts[0] + SOH + b"9=%d" % len(payload) + SOH + payload
    return head + b"10=%03d" % checksum(head) + SOH


def fields(message: bytes) -> dict[int, bytes]:
    """Return the tag -> value map of a framed message (the first value of a repeated tag)."""
    out: dict[int, bytes] = {}
    for part in message.split(SOH):
        tag, eq, value = part.partition(b"=")
        if eq and tag.isdigit():
            out.setdefault(int(tag), value)
    return out


@dataclass(frozen=True)
class FixDoorSettings:
    """Where the door listens, what it lets through, and where the engine is."""

    host: str = "127.0.0.1"
    port: int = 9878
    engine_port: int = 0
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # set: a client certificate naming the SenderCompID
    max_message_bytes: int = 64 * 1024
    logon_timeout_s: float = 10.0
    max_connections: int = 32
    our_comp_id: str = "TRADEFLUX"
    sender_comp_ids: frozenset[str] = frozenset({"DROPCOPY"})
    logon_secret: bytes | None = None  # set by the gateway: the engine checks it (554)

    def ssl_context(self) -> ssl.SSLContext | None:
        """Return the server TLS context, or None for plaintext (loopback or insecure bind)."""
        if self.tls_cert is None and self.tls_key is None:
            if self.tls_client_ca is not None:
                raise FixDoorError("--fix-tls-client-ca needs --fix-tls-cert and --fix-tls-key")
            return None
        if self.tls_cert is None or self.tls_key is None:
            raise FixDoorError("FIX TLS needs both --fix-tls-cert and --fix-tls-key")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.tls_cert, self.tls_key)
            if self.tls_client_ca is not None:
                context.verify_mode = ssl.CERT_REQUIRED
                context.load_verify_locations(self.tls_client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise FixDoorError(f"FIX TLS files cannot be used: {exc}") from None
        return context


@dataclass
class DoorCounters:
    """What the door did since start (read by /healthz and /metrics)."""

    open: int = 0
    logged_on: int = 0  # Logons passed to the engine
    closed: dict[str, int] = field(default_factory=dict)  # refusals by reason code


def _cert_names(cert: dict[str, object]) -> set[str]:
    names: set[str] = set()
    for rdn in cert.get("subject", ()):  # type: ignore[attr-defined]
        for key, value in rdn:
            if key == "commonName":
                names.add(str(value))
    for kind, value in cert.get("subjectAltName", ()):  # type: ignore[attr-defined]
        if kind == "DNS":
            names.add(str(value))
    return names


class FixFrontDoor:
    """The asyncio server in front of the engine (see the module doc), on a thread of its own."""

    def __init__(self, settings: FixDoorSettings) -> None:
        self.settings = settings
        self.counters = DoorCounters()
        self._context = settings.ssl_context()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="fix-front-door")
        self._thread.daemon = True
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = settings.port

    def start(self) -> None:
        """Listen on the door's address (a busy port is a FixDoorError) and serve in a thread."""
        try:
            self._server = self._loop.run_until_complete(
                asyncio.start_server(
                    self._serve, self.settings.host, self.settings.port,
                    reuse_address=True, limit=_READ_BYTES,
                )
            )  # fmt: skip
        except OSError as exc:
            raise FixDoorError(
                f"cannot listen for FIX on {self.settings.host}:{self.settings.port} "
                f"({exc.strerror}); choose another --fix-port or --fix-host"
            ) from None
        self.port = self._server.sockets[0].getsockname()[1]
        self._thread.start()
        log.info(
            "fix front door listening host=%s port=%d tls=%s client_cert=%s engine=127.0.0.1:%d "
            "max_message_bytes=%d logon_timeout_s=%g max_connections=%d",
            self.settings.host, self.port, "on" if self._context else "off",
            "required" if self.settings.tls_client_ca else "no", self.settings.engine_port,
            self.settings.max_message_bytes, self.settings.logon_timeout_s,
            self.settings.max_connections,
        )  # fmt: skip

    def stop(self) -> None:
        """Stop listening and close every connection."""
        if self._server is None:
            if not self._thread.is_alive() and not self._loop.is_closed():
                self._loop.close()  # never started
            return

        async def close() -> None:
            assert self._server is not None  # noqa: S101
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()
        self._server = None

    def _refuse(self, reason: str, peer: str, detail: str) -> None:
        self.counters.closed[reason] = self.counters.closed.get(reason, 0) + 1
        log.warning("fix connection closed peer=%s reason=%s detail=%r", peer, reason, detail)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # noqa: S101
        self._tasks.add(task)
        peername = writer.get_extra_info("peername") or ("?", 0)
        peer = f"{peername[0]}:{peername[1]}"
        try:
            if self.counters.open >= self.settings.max_connections:
                self._refuse("too_many_connections", peer, f"{self.counters.open} open")
                return
            self.counters.open += 1
            try:
                await self._session(reader, writer, peer)
            finally:
                self.counters.open -= 1
        except asyncio.CancelledError:
            pass
        finally:
            writer.transport.abort()
            self._tasks.discard(task)

    async def _session(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        settings = self.settings
        framer = FixFramer(settings.max_message_bytes)
        try:
            async with asyncio.timeout(settings.logon_timeout_s):
                if self._context is not None:
                    await writer.start_tls(self._context)
                logon, after_logon = await self._first_messages(reader, framer)
        except TimeoutError:
            self._refuse("no_logon", peer, f"no Logon within {settings.logon_timeout_s:g} s")
            return
        except (ssl.SSLError, ConnectionError, OSError) as exc:
            self._refuse("tls_handshake", peer, str(exc) or type(exc).__name__)
            return
        except FramingError as exc:
            self._refuse("framing", peer, str(exc))
            return
        if logon is None:
            self._refuse("closed_before_logon", peer, "the caller hung up")
            return
        problem = self._check_logon(logon, writer)
        if problem is not None:
            self._refuse("logon_refused", peer, problem)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", settings.engine_port)
        except OSError as exc:
            self._refuse("engine_unreachable", peer, str(exc))
            return
        self.counters.logged_on += 1
        if settings.logon_secret is not None:
            logon = with_field(logon, _PASSWORD, settings.logon_secret)
        try:
            for message in (logon, *after_logon):
                up_writer.write(message)
            await self._pump(reader, writer, up_reader, up_writer, framer, peer)
        finally:
            up_writer.transport.abort()

    async def _first_messages(
        self, reader: asyncio.StreamReader, framer: FixFramer
    ) -> tuple[bytes | None, list[bytes]]:
        """Return the first message and any whole ones that came with it (None: hung up)."""
        while True:
            data = await reader.read(_READ_BYTES)
            if not data:
                return None, []
            messages = framer.feed(data)
            if messages:
                return messages[0], messages[1:]

    def _check_logon(self, logon: bytes, writer: asyncio.StreamWriter) -> str | None:
        tags = fields(logon)
        if tags.get(35) != b"A":
            msg_type = tags.get(35, b"?").decode(errors="replace")
            return f"the first message is MsgType {msg_type}, not a Logon"
        sender = tags.get(49, b"").decode(errors="replace")
        if sender not in self.settings.sender_comp_ids:
            return f"SenderCompID {sender!r} is not allowed"
        target = tags.get(56, b"").decode(errors="replace")
        if target != self.settings.our_comp_id:
            return f"TargetCompID {target!r} is not ours ({self.settings.our_comp_id})"
        if self.settings.tls_client_ca is not None:
            cert = writer.get_extra_info("peercert") or {}
            if sender not in _cert_names(cert):
                return f"the client certificate does not name SenderCompID {sender!r}"
        return None

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
        framer: FixFramer,
        peer: str,
    ) -> None:
        """Relay until either side closes: checked messages in, the engine's bytes out as is."""

        async def inbound() -> None:
            while data := await reader.read(_READ_BYTES):
                try:
                    messages = framer.feed(data)
                except FramingError as exc:
                    self._refuse("framing", peer, str(exc))
                    return
                for message in messages:
                    up_writer.write(message)
                await up_writer.drain()

        async def outbound() -> None:
            while data := await up_reader.read(_READ_BYTES):
                writer.write(data)
                await writer.drain()

        tasks = [asyncio.create_task(inbound()), asyncio.create_task(outbound())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def free_loopback_port() -> int:
    """Return a port nobody listens on now on 127.0.0.1 (for the engine's own port)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _loopback_only_filter() -> tuple[bytes, ctypes.Array[ctypes.c_char]]:
    """Return a ``struct sock_fprog`` accepting IPv4 packets from 127.0.0.0/8 only, and its code."""

    def insn(code: int, jt: int, jf: int, k: int) -> bytes:
        return struct.pack("HBBI", code, jt, jf, k & 0xFFFFFFFF)

    ld_b_abs, jeq_k, ret_k = 0x30, 0x15, 0x06
    program = b"".join(
        [
            insn(ld_b_abs, 0, 0, _SKF_NET_OFF + 12),  # first byte of the IPv4 source address
            insn(jeq_k, 0, 1, 127),
            insn(ret_k, 0, 0, 0xFFFFFFFF),  # keep the packet
            insn(ret_k, 0, 0, 0),  # drop it
        ]
    )
    code = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("HL", len(program) // 8, ctypes.addressof(code))
    return fprog, code


def restrict_to_loopback(port: int, listing: Callable[[], list[str]] | None = None) -> bool:
    """Attach (and lock) the loopback-only filter to this process's listener on ``port``.

    Finds the engine's listening socket among this process's file descriptors. Returns
    False if none was found or the kernel refused (then only AllowedRemoteAddresses holds).
    """
    fds = (listing or (lambda: os.listdir("/proc/self/fd")))()
    fprog, code = _loopback_only_filter()
    for name in fds:
        try:
            dup = os.dup(int(name))
        except (OSError, ValueError):
            continue
        try:
            sock = socket.socket(fileno=dup)
        except OSError:
            os.close(dup)
            continue
        with sock:
            try:
                if sock.family != socket.AF_INET or sock.type != socket.SOCK_STREAM:
                    continue
                if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                    continue
                if sock.getsockname()[1] != port:
                    continue
                sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, _SO_LOCK_FILTER, 1)
                return bool(code)  # the program stays alive until the kernel copied it
            except OSError as exc:
                log.warning("fix engine port %d: socket filter refused (%s)", port, exc)
                return False
    return False
