"""The FIX front door's framing check: whole FIX 4.4 messages within the limit, or a refusal."""

from __future__ import annotations

import pytest

from tradeflux.gateway.fix_door import FixFramer, FramingError, checksum, fields, with_field


def message(body: str) -> bytes:
    """A FIX 4.4 message with ``body`` (SOH as |) and a correct BodyLength and CheckSum."""
    payload = body.replace("|", "\x01").encode()
    head = b"8=FIX.4.4\x019=" + str(len(payload)).encode() + b"\x01" + payload
    return head + b"10=" + f"{checksum(head):03d}".encode() + b"\x01"


LOGON = message("35=A|49=DROPCOPY|56=TRADEFLUX|34=1|52=20261124-09:00:00.000|98=0|108=5|")


def test_whole_messages_come_out_however_the_bytes_are_split() -> None:
    stream = LOGON + message("35=0|34=2|")
    framer = FixFramer(1024)
    out = [m for i in range(0, len(stream), 7) for m in framer.feed(stream[i : i + 7])]
    assert out == [LOGON, message("35=0|34=2|")]
    assert fields(LOGON)[35] == b"A" and fields(LOGON)[49] == b"DROPCOPY"


def test_a_body_length_over_the_limit_is_refused_as_soon_as_it_is_read() -> None:
    framer = FixFramer(65536)
    with pytest.raises(FramingError, match="^BodyLength 999999999 is over the limit of 65536"):
        framer.feed(b"8=FIX.4.4\x019=999999999\x01")  # not one byte of the body sent yet


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"GET / HTTP/1.1\r\n", "not a FIX.4.4 message"),
        (b"\x16\x03\x01\x02\x00", "not a FIX.4.4 message"),  # a TLS ClientHello
        (b"8=FIX.4.2\x019=5\x01", "not a FIX.4.4 message"),
        (b"8=FIX.4.4\x0135=A\x01", "BodyLength (9=) must follow BeginString"),
        (b"8=FIX.4.4\x019=12x\x01", "is not a number"),
        (b"8=FIX.4.4\x019=1234567890123", "not a number of at most 9 digits"),
        (LOGON[:-4] + b"000\x01", "does not match"),
        (LOGON.replace(b"\x0110=", b"\x01X10="), "CheckSum (10=) is not where"),
    ],
)
def test_what_is_no_fix_44_message_is_refused_saying_why(data: bytes, reason: str) -> None:
    with pytest.raises(FramingError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        FixFramer(1024).feed(data)


def test_a_partial_message_waits_for_the_rest() -> None:
    framer = FixFramer(1024)
    assert framer.feed(LOGON[:-1]) == []
    assert framer.feed(LOGON[-1:]) == [LOGON]


def test_the_door_sets_its_password_in_a_logon_and_the_message_stays_valid() -> None:
    theirs = message("35=A|49=DROPCOPY|56=TRADEFLUX|34=1|52=20261124-09:00:00.000|98=0|"
                     "108=5|554=their-own|")  # fmt: skip
    for logon in (LOGON, theirs):
        stamped = with_field(logon, 554, b"s3cret")
        assert FixFramer(1024).feed(stamped) == [stamped]  # BodyLength and CheckSum right
        tags = fields(stamped)
        assert tags[554] == b"s3cret" and stamped.count(b"\x01554=") == 1
        assert {k: v for k, v in tags.items() if k not in (9, 10, 554)} == {
            k: v for k, v in fields(logon).items() if k not in (9, 10, 554)
        }
