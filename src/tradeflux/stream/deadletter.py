"""Dead letters: a record that cannot be decoded, processed or written, or that a processor rejects.

The dead letter keeps the original key, bytes and headers, and adds headers that say
where it came from and why: ``tf.stage``, ``tf.reason`` (a stable code), ``tf.error``
(the exception class), ``tf.detail`` (its message, shortened), ``tf.source.topic``,
``tf.source.partition``, ``tf.source.offset``.
"""

from __future__ import annotations

from collections.abc import Mapping

from tradeflux.stream.records import Emitted, Headers

DECODE_ERROR = "decode_error"  # the bytes are not a value of the input's type
PROCESSOR_ERROR = "processor_error"  # the processor raised on this record
ENCODE_ERROR = "encode_error"  # an output it made cannot be encoded
STORE_ENCODE_ERROR = "store_encode_error"  # a store value it wrote cannot be encoded
RECORD_TOO_LARGE = "record_too_large"  # an output or store value is over its topic's limit
PRODUCE_REFUSED = "produce_refused"  # the broker or client refused an output it made
TIMER_ERROR = "timer_error"  # a timer failed for one key (no input record: no source)
_DETAIL_MAX = 500


def dead_letter(
    topic: str,
    *,
    stage: str,
    reason: str,
    error: BaseException | None,
    detail: str = "",
    error_name: str | None = None,
    source_topic: str,
    source_partition: int,
    source_offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: Headers | None,
) -> Emitted:
    """Build the dead-letter record for one input record, for ``topic``."""
    detail = (detail or ("" if error is None else str(error)))[:_DETAIL_MAX]
    meta: Headers = [
        ("tf.stage", stage.encode()),
        ("tf.reason", reason.encode()),
        ("tf.error", (error_name or (type(error).__name__ if error is not None else "")).encode()),
        ("tf.detail", detail.encode(errors="replace")),
        ("tf.source.topic", source_topic.encode()),
        ("tf.source.partition", str(source_partition).encode()),
        ("tf.source.offset", str(source_offset).encode()),
    ]
    original = [(k, v) for k, v in headers or () if not k.startswith("tf.")]
    return Emitted(topic, key, value, original + meta, None)


def header_map(headers: Headers | None) -> Mapping[str, str]:
    """Return the ``tf.*`` headers of a dead letter as text, for readers and tests."""
    return {
        k: v.decode() if isinstance(v, bytes) else v
        for k, v in headers or ()
        if k.startswith("tf.") and v is not None
    }
