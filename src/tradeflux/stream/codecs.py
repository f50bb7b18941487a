"""Serialization of record values: msgspec JSON by default, MessagePack per topic, or raw bytes."""

from __future__ import annotations

from typing import Any, Generic, Protocol, TypeVar

import msgspec

T = TypeVar("T")


class Codec(Protocol[T]):
    """Turns values into bytes and back; ``decode`` raises on bad input."""

    def encode(self, value: T) -> bytes:
        """Return the wire form of ``value``."""
        ...

    def decode(self, data: bytes) -> T:
        """Return the value of ``data``; raise ``msgspec.DecodeError`` (or ValueError) if bad."""
        ...


class JsonCodec(Generic[T]):
    """msgspec JSON for a type (a Struct, dict, int, ...); Decimal is encoded as a string."""

    def __init__(self, type_: type[T] | Any = Any) -> None:
        self.type = type_
        self._encoder = msgspec.json.Encoder(decimal_format="string")
        self._decoder: msgspec.json.Decoder[T] = msgspec.json.Decoder(type_)

    def encode(self, value: T) -> bytes:
        """Return the JSON bytes of ``value``."""
        return self._encoder.encode(value)

    def decode(self, data: bytes) -> T:
        """Return the value of JSON ``data``, validated against the type."""
        return self._decoder.decode(data)


class MsgpackCodec(Generic[T]):
    """msgspec MessagePack for a type: smaller and faster than JSON, for internal topics."""

    def __init__(self, type_: type[T] | Any = Any) -> None:
        self.type = type_
        self._encoder = msgspec.msgpack.Encoder(decimal_format="string")
        self._decoder: msgspec.msgpack.Decoder[T] = msgspec.msgpack.Decoder(type_)

    def encode(self, value: T) -> bytes:
        """Return the MessagePack bytes of ``value``."""
        return self._encoder.encode(value)

    def decode(self, data: bytes) -> T:
        """Return the value of MessagePack ``data``, validated against the type."""
        return self._decoder.decode(data)


class RawCodec:
    """Bytes as they are (dead letters, pass-through)."""

    def encode(self, value: bytes) -> bytes:
        """Return ``value`` unchanged."""
        return value

    def decode(self, data: bytes) -> bytes:
        """Return ``data`` unchanged."""
        return data
