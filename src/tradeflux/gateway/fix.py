"""The FIX 4.4 drop-copy acceptor: QuickFIX (the C++ engine) does the session, we the trades.

The engine runs the session layer (Logon, heartbeats, sequence numbers, resend requests
and gap fills, rejects, Logout) and validates every message against its FIX44 data
dictionary. Our application callback maps ExecutionReports and TradeCaptureReports to
TradeEvents (``fix_mapping``) and writes them to ``trades.raw``.

Acknowledgement: QuickFIX advances (and persists, in its file store) the expected
incoming sequence number only *after* ``fromApp`` returns. ``fromApp`` returns only once
Kafka has acknowledged the record (acks=all, idempotent producer), so a message whose
sequence number the store holds is in Kafka. A gateway killed between the Kafka ack and
the store write expects that message again: on the sender's next Logon the engine asks
for a resend, the message comes back with PossDupFlag=Y and maps to the same trade id
and version, and the validator drops the second copy. While Kafka does not acknowledge,
``fromApp`` keeps trying (the session stalls, nothing is acknowledged); if the gateway
is told to stop meanwhile, it waits a grace period and then exits (code 75) without
acknowledging, which is safe for the same reason. Nothing else may leave ``fromApp``
with an exception: the Python binding ends the process on any exception but the four
FIX ones (and then the message is not acknowledged either).

A valid FIX message that is no valid trade (no Account on a fill, say) is answered with
a BusinessMessageReject (a missing field) or a Reject (a bad value), and logged.

Post-trade messages (``fix_postrade``): an AllocationInstruction (35=J) is written to
``allocations.in`` and a ConfirmationAck (35=AU) to ``confirmations.in`` on the same
terms (acknowledged only once in Kafka); a J is then answered at once with an
AllocationInstructionAck (35=P) AllocStatus 3 "received". The decided 35=P and the
Confirmations (35=AK) follow from the services' topics (``gateway.outbound``) through
:meth:`DropCopyApplication.send`.
The engine listens on a loopback port of its own: callers come in through the front door
(``gateway.fix_door``: TLS, bind address, framing, logon timeout, connection cap). Its
sessions accept Logons from 127.0.0.1 only (``AllowedRemoteAddresses``), and its listening
socket drops packets from anywhere else (``fix_door.restrict_to_loopback``).
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

import quickfix as fix  # type: ignore[import-untyped]
import quickfix44 as fix44  # type: ignore[import-untyped]

from tradeflux.errors import TradefluxError
from tradeflux.gateway.fix_allocation import OutboundMessage, received_ack
from tradeflux.gateway.fix_mapping import (
    BODY_TAGS,
    SIDE_TAGS,
    FixFields,
    FixMappingError,
    parse_utc_timestamp,
    to_trade_event,
)
from tradeflux.gateway.fix_postrade import POST_TRADE_TYPES, build_message, post_trade_record
from tradeflux.gateway.writer import DeliveryError, TradeWriter

log = logging.getLogger("tradeflux.gateway.fix")

_POSS_DUP_FLAG = 43
_MSG_SEQ_NUM = 34
_MSG_TYPE = 35
_SENDING_TIME = 52
_ORIG_SENDING_TIME = 122
_BEGIN_SEQ_NO = 7
_END_SEQ_NO = 16
_NO_PARTY_IDS = 453
_PASSWORD = 554
_NO_SIDES = 552
_PARTY_ID = 448
_PARTY_ROLE = 452
_EXIT_NOT_ACKNOWLEDGED = 75  # EX_TEMPFAIL: stopped with a message not in Kafka; it will be resent
_EXIT_BUG = 70  # EX_SOFTWARE
# Fault tests only: SIGKILL this process right after Kafka acknowledged the N-th FIX trade,
# before the engine stores its sequence number (the window the resend path must cover).
FAULT_KILL_AFTER_TRADES = "TRADEFLUX_FAULT_GATEWAY_KILL_AFTER_TRADES"


class FixGatewayError(TradefluxError):
    """The FIX acceptor cannot start (port in use, bad settings file, ...)."""


def dictionary_path() -> Path:
    """Return the FIX 4.4 data dictionary shipped with tradeflux (QuickFIX's own)."""
    return Path(str(resources.files("tradeflux.gateway") / "spec" / "FIX44.xml"))


@dataclass(frozen=True)
class FixSettings:
    """Where the acceptor listens, which sessions it accepts and where it keeps its files.

    One session per ``target_comp_ids`` entry, each ``FIX.4.4:sender_comp_id->target``.
    ``folder`` holds the file store (sequence numbers and sent messages, so a restarted
    gateway resumes the sessions) and the engine's message and event logs.
    ``settings_file``: a complete QuickFIX settings file to use instead (schedules, other
    stores); its [DEFAULT] SocketAcceptPort is then the engine's port.
    ``port`` is the engine's own port: QuickFIX (C++) binds every interface (it has no
    bind-address setting), so only the front door, on loopback, connects to it.
    """

    folder: Path
    port: int = 9878
    sender_comp_id: str = "TRADEFLUX"
    target_comp_ids: tuple[str, ...] = ("DROPCOPY",)
    settings_file: Path | None = None

    def engine_port(self) -> int:
        """Return the port the engine listens on (the settings file's, if one is given)."""
        if self.settings_file is None:
            return self.port
        try:
            defaults = fix.SessionSettings(str(self.settings_file)).get()
            return int(defaults.getInt(fix.SOCKET_ACCEPT_PORT))
        except (fix.ConfigError, fix.RuntimeError) as exc:
            raise FixGatewayError(
                f"FIX acceptor settings {self.settings_file}: no [DEFAULT] SocketAcceptPort ({exc})"
            ) from None

    def render(self) -> str:
        """Return the QuickFIX settings text for these settings."""
        lines = [
            "[DEFAULT]",
            "ConnectionType=acceptor",
            f"SocketAcceptPort={self.port}",
            "SocketReuseAddress=Y",
            f"FileStorePath={self.folder / 'store'}",
            f"FileLogPath={self.folder / 'log'}",
            "NonStopSession=Y",  # no daily reset: the sender decides (ResetSeqNumFlag)
            "UseDataDictionary=Y",
            f"DataDictionary={dictionary_path()}",
            "ResetOnLogon=N",
            "ResetOnLogout=N",
            "ResetOnDisconnect=N",
            "PersistMessages=Y",
            "AllowedRemoteAddresses=127.0.0.1",  # the front door; see gateway.fix_door
        ]
        for target in self.target_comp_ids:
            lines += [
                "",
                "[SESSION]",
                "BeginString=FIX.4.4",
                f"SenderCompID={self.sender_comp_id}",
                f"TargetCompID={target}",
            ]
        return "\n".join(lines) + "\n"


@dataclass
class FixCounters:
    """What the acceptor did since it started (read by /healthz and /metrics)."""

    received: int = 0  # application messages
    trades: int = 0  # TradeEvents written to Kafka
    ignored: int = 0  # application messages that report no trade
    rejected: int = 0  # valid FIX, no valid trade: answered with a reject
    poss_dup: int = 0  # received with PossDupFlag=Y (a resend)
    resend_requests: int = 0  # ResendRequests the engine sent
    allocations: int = 0  # AllocationInstructions (35=J) written to Kafka
    confirmation_acks: int = 0  # ConfirmationAcks (35=AU) written to Kafka
    sent: int = 0  # our own messages (35=P, 35=AK) handed to the engine
    sessions: dict[str, str] = field(default_factory=dict)  # session -> logged_on / logged_out


def _field(fields: Any, tag: int) -> str | None:
    """Return the value of ``tag`` in a QuickFIX field map, or None if it is not set."""
    if not fields.isSetField(tag):
        return None
    return str(fields.getField(tag))


def _parties(group_holder: Any, group_type: Any) -> tuple[tuple[str, int], ...]:
    """Return the (PartyID, PartyRole) pairs of the Parties of ``group_holder``."""
    out: list[tuple[str, int]] = []
    for i in range(1, int(group_holder.groupCount(_NO_PARTY_IDS)) + 1):
        party = group_type()
        group_holder.getGroup(i, party)
        party_id, role = _field(party, _PARTY_ID), _field(party, _PARTY_ROLE)
        if party_id is not None and role is not None and role.isdigit():
            out.append((party_id, int(role)))
    return tuple(out)


def fix_fields(message: Any) -> FixFields:
    """Extract what the mapping needs from a validated QuickFIX message."""
    header = message.getHeader()
    msg_type = str(header.getField(_MSG_TYPE))
    poss_dup = _field(header, _POSS_DUP_FLAG) == "Y"
    sent_raw = (_field(header, _ORIG_SENDING_TIME) if poss_dup else None) or str(
        header.getField(_SENDING_TIME)
    )
    fields: dict[int, str] = {}
    for tag in BODY_TAGS:
        value = _field(message, tag)
        if value is not None:
            fields[tag] = value
    parties: tuple[tuple[str, int], ...] = ()
    if msg_type == "8":
        parties = _parties(message, fix44.ExecutionReport.NoPartyIDs)
    elif msg_type == "AE" and message.groupCount(_NO_SIDES) >= 1:
        side = fix44.TradeCaptureReport.NoSides()
        message.getGroup(1, side)
        for tag in SIDE_TAGS:
            value = _field(side, tag)
            if value is not None:
                fields[tag] = value
        parties = _parties(side, fix44.TradeCaptureReport.NoSides.NoPartyIDs)
    return FixFields(
        msg_type=msg_type,
        seq_num=int(header.getField(_MSG_SEQ_NUM)),
        sent_at=parse_utc_timestamp(sent_raw),
        fields=fields,
        parties=parties,
        poss_dup=poss_dup,
    )


class DropCopyApplication(fix.Application):  # type: ignore[misc]
    """The QuickFIX application: trades from ``fromApp`` into Kafka before acknowledging."""

    def __init__(
        self, writer: TradeWriter, retry_backoff_s: float = 1.0, logon_secret: bytes | None = None
    ) -> None:
        """``logon_secret``: the Password (554) the front door puts in every Logon it passes."""
        super().__init__()
        self.writer = writer
        self._logon_secret = logon_secret
        self.counters = FixCounters()
        self.stopping = threading.Event()
        self._retry_backoff_s = retry_backoff_s
        self._lock = threading.Lock()
        self._kill_after_trades = int(os.environ.get(FAULT_KILL_AFTER_TRADES) or 0)
        self._session_ids: dict[str, Any] = {}

    # Session events -------------------------------------------------------------------

    def onCreate(self, session_id: Any) -> None:  # noqa: N802 - the QuickFIX API
        """Record a session the engine created (logged out until its Logon)."""
        with self._lock:
            self.counters.sessions[str(session_id)] = "logged_out"
            self._session_ids[str(session_id)] = session_id
        log.info("fix session created session=%s", session_id)

    def onLogon(self, session_id: Any) -> None:  # noqa: N802
        """Record a Logon."""
        with self._lock:
            self.counters.sessions[str(session_id)] = "logged_on"
        log.info("fix logon session=%s", session_id)

    def onLogout(self, session_id: Any) -> None:  # noqa: N802
        """Record a Logout or disconnect."""
        with self._lock:
            self.counters.sessions[str(session_id)] = "logged_out"
        log.info("fix logout session=%s", session_id)

    def toAdmin(self, message: Any, session_id: Any) -> None:  # noqa: N802
        """Log the resend requests the engine sends (a gap in the sender's sequence)."""
        if str(message.getHeader().getField(_MSG_TYPE)) == "2":
            with self._lock:
                self.counters.resend_requests += 1
            log.info(
                "fix resend request sent session=%s begin=%s end=%s",
                session_id,
                _field(message, _BEGIN_SEQ_NO),
                _field(message, _END_SEQ_NO),
            )

    def fromAdmin(self, message: Any, session_id: Any) -> None:  # noqa: N802
        """Refuse a Logon that did not come through the front door; accept the rest."""
        if self._logon_secret is None:
            return
        if str(message.getHeader().getField(_MSG_TYPE)) != "A":
            return
        given = (_field(message, _PASSWORD) or "").encode()
        if not hmac.compare_digest(given, self._logon_secret):
            log.warning("fix logon refused: not through the front door session=%s", session_id)
            raise fix.RejectLogon("logon through the gateway's FIX address only")

    def toApp(self, message: Any, session_id: Any) -> None:  # noqa: N802
        """Let our allocation acks and confirmations go out as built."""

    def send(self, session: str, out: OutboundMessage) -> bool:
        """Hand ``out`` to the engine for ``session`` (``str`` of its SessionID).

        False if no such session exists here. A session logged out stores the message
        (sequence number taken, persisted) and delivers it in the resend after its next
        Logon.
        """
        session_id = self._session_ids.get(session)
        if session_id is None:
            return False
        fix.Session.sendToTarget(build_message(out), session_id)
        self._count("sent")
        return True

    # Application messages -------------------------------------------------------------

    def fromApp(self, message: Any, session_id: Any) -> None:  # noqa: N802
        """Write the message's trade to Kafka and return only once Kafka acknowledged it."""
        try:
            self._process(message, session_id)
        except (fix.FieldNotFound, fix.IncorrectTagValue, fix.UnsupportedMessageType):
            raise  # the engine answers with a reject and acknowledges the message
        except BaseException:  # a bug: stop without acknowledging (see the module doc)
            log.critical(
                "fix message not processed; exiting without acknowledging it session=%s",
                session_id,
                exc_info=True,
            )
            logging.shutdown()
            os._exit(_EXIT_BUG)

    def _process(self, message: Any, session_id: Any) -> None:
        received_at = dt.datetime.now(dt.UTC)
        fields = fix_fields(message)
        with self._lock:
            self.counters.received += 1
            if fields.poss_dup:
                self.counters.poss_dup += 1
        if fields.poss_dup:
            log.info(
                "fix resent message received session=%s seq=%d msg_type=%s poss_dup=Y",
                session_id,
                fields.seq_num,
                fields.msg_type,
            )
        if fields.msg_type in POST_TRADE_TYPES:
            self._process_post_trade(message, fields, session_id, received_at)
            return
        if fields.msg_type not in ("8", "AE"):
            self._count("rejected")
            log.warning(
                "fix message type carries no trade; rejected session=%s seq=%d msg_type=%s",
                session_id,
                fields.seq_num,
                fields.msg_type,
            )
            raise fix.UnsupportedMessageType()
        try:
            event = to_trade_event(fields, received_at)
        except FixMappingError as exc:
            self._refuse(exc, fields, session_id, "trade")
        if event is None:
            self._count("ignored")
            return
        self._write(lambda: self.writer.write([event], cancel=self.stopping), fields, session_id)
        self._count("trades")
        if self._kill_after_trades and self.counters.trades == self._kill_after_trades:
            log.warning("fault injection: SIGKILL after trade %d is in Kafka", self.counters.trades)
            os.kill(os.getpid(), signal.SIGKILL)
        log.debug(
            "fix trade written session=%s seq=%d trade_id=%s version=%d event_type=%s",
            session_id,
            fields.seq_num,
            event.trade_id,
            event.version,
            event.event_type,
        )

    def _process_post_trade(
        self, message: Any, fields: FixFields, session_id: Any, received_at: dt.datetime
    ) -> None:
        """Write a 35=J or 35=AU to its topic; answer a J with "received" once in Kafka."""
        try:
            record = post_trade_record(message, fields.msg_type, received_at, str(session_id))
        except FixMappingError as exc:
            self._refuse(exc, fields, session_id, "allocation or confirmation ack")
        self._write(
            lambda: self.writer.write_to(
                record.topic, [(record.key, record.value, None)], cancel=self.stopping
            ),
            fields,
            session_id,
        )
        ins = record.instruction
        self._count("allocations" if ins is not None else "confirmation_acks")
        log.info(
            "fix post-trade message written session=%s seq=%d msg_type=%s key=%s",
            session_id,
            fields.seq_num,
            fields.msg_type,
            record.key,
        )
        if ins is not None:
            self.send(str(session_id), received_ack(ins, dt.datetime.now(dt.UTC)))

    def _refuse(
        self, exc: FixMappingError, fields: FixFields, session_id: Any, what: str
    ) -> NoReturn:
        """Count and log a message that maps to nothing; raise the engine's reject."""
        self._count("rejected")
        log.warning(
            "fix message is no valid %s; rejected session=%s seq=%d msg_type=%s tag=%d reason=%r",
            what,
            session_id,
            fields.seq_num,
            fields.msg_type,
            exc.tag,
            exc.reason,
        )
        if exc.kind == "missing":
            raise fix.FieldNotFound(exc.tag) from None
        raise fix.IncorrectTagValue(exc.tag) from None

    def _write(self, write: Callable[[], None], fields: FixFields, session_id: Any) -> None:
        """Write until Kafka acknowledges; exit unacknowledged if told to stop meanwhile."""
        attempt = 0
        while True:
            try:
                write()
                return
            except DeliveryError as exc:
                if self.stopping.is_set():
                    log.error(
                        "fix message not in Kafka at stop; exiting without acknowledging it "
                        "(the sender resends it) session=%s seq=%d",
                        session_id,
                        fields.seq_num,
                    )
                    logging.shutdown()
                    os._exit(_EXIT_NOT_ACKNOWLEDGED)
                attempt += 1
                log.error(
                    "fix message not acknowledged by Kafka; retrying session=%s seq=%d "
                    "attempt=%d error=%r",
                    session_id,
                    fields.seq_num,
                    attempt,
                    str(exc),
                )
                self.stopping.wait(self._retry_backoff_s)

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self.counters, name, getattr(self.counters, name) + 1)


class FixAcceptor:
    """The QuickFIX socket acceptor (a thread per session) around a DropCopyApplication."""

    def __init__(
        self, settings: FixSettings, writer: TradeWriter, logon_secret: bytes | None = None
    ) -> None:
        self.settings = settings
        self.application = DropCopyApplication(writer, logon_secret=logon_secret)
        settings.folder.mkdir(parents=True, exist_ok=True)
        settings.folder.chmod(0o700)  # its message log holds the front door's Logon secret
        path = settings.settings_file
        if path is None:
            path = settings.folder / "acceptor.cfg"
            path.write_text(settings.render())
        try:
            self._session_settings = fix.SessionSettings(str(path))
            self._acceptor = fix.ThreadedSocketAcceptor(
                self.application,
                fix.FileStoreFactory(self._session_settings),
                self._session_settings,
                fix.FileLogFactory(self._session_settings),
            )
        except (fix.ConfigError, fix.RuntimeError) as exc:
            raise FixGatewayError(f"FIX acceptor settings {path}: {exc}") from None

    def start(self) -> None:
        """Listen for sessions (returns at once; sessions run on the engine's threads)."""
        from tradeflux.gateway.fix_door import restrict_to_loopback

        port = self.settings.engine_port()
        try:
            self._acceptor.start()
        except (fix.ConfigError, fix.RuntimeError) as exc:
            raise FixGatewayError(
                f"the FIX engine cannot start on port {port}: {exc}; "
                "choose another --fix-engine-port"
            ) from None
        filtered = restrict_to_loopback(port)
        if not filtered:
            log.warning(
                "fix engine port %d: no loopback-only socket filter; firewall it "
                "(sessions still take Logons from 127.0.0.1 only)",
                port,
            )
        log.info(
            "fix engine listening port=%d loopback_filter=%s sessions=%s folder=%s",
            port,
            "on" if filtered else "off",
            ",".join(f"{self.settings.sender_comp_id}->{t}" for t in self.settings.target_comp_ids),
            self.settings.folder,
        )

    def stop(self, grace_s: float = 10.0) -> None:
        """Log the sessions out and stop.

        A message being written finishes if Kafka acknowledges it within ``grace_s``;
        one still waiting then ends the process unacknowledged (it will be resent).
        """
        give_up = threading.Timer(grace_s, self.application.stopping.set)
        give_up.daemon = True
        give_up.start()
        try:
            self._acceptor.stop()
        finally:
            give_up.cancel()
            self.application.stopping.set()
        log.info("fix acceptor stopped")
