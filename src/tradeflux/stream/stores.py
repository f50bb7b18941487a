"""In-memory key/value stores in layers: a plain map, and a per-batch overlay over it.

The map knows nothing of Kafka. :class:`StorePartition` is what a processor sees: writes
go to an overlay that is merged into the map only when the batch's transaction commits,
and is dropped when it aborts. A savepoint lets the runtime undo one failed processor
call inside a batch. Values are treated as immutable: put a new value, never mutate one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

_ABSENT: Any = object()  # no entry in the overlay: look in the map
_DELETED: Any = object()  # the key was deleted in this batch


class InMemoryStore:
    """A key/value map for one store of one partition."""

    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.data)


class StorePartition:
    """A store partition as a processor sees it: reads through, writes to a batch overlay."""

    __slots__ = ("_base", "_deletes", "_overlay", "_undo", "encoded", "name", "partition")

    def __init__(self, name: str, partition: int, base: InMemoryStore | None = None) -> None:
        self.name = name
        self.partition = partition
        self._base = base if base is not None else InMemoryStore()
        self._overlay: dict[str, Any] = {}
        self._deletes = False  # a delete in this batch: commit must look at each value
        self._undo: dict[str, Any] | None = None
        # The changelog bytes of keys changed in this batch, encoded as soon as the call
        # that changed them returned (so a value that cannot be encoded is that call's
        # failure, isolated to its record); the commit sends these bytes.
        self.encoded: dict[str, bytes] = {}

    def get(self, key: str, default: Any = None) -> Any:
        """Return the value of ``key`` as of this batch, or ``default``."""
        value = self._overlay.get(key, _ABSENT)
        if value is _ABSENT:
            return self._base.data.get(key, default)
        return default if value is _DELETED else value

    def __contains__(self, key: str) -> bool:
        value = self._overlay.get(key, _ABSENT)
        if value is _ABSENT:
            return key in self._base.data
        return value is not _DELETED

    def put(self, key: str, value: Any) -> None:
        """Set ``key`` to ``value`` in this batch; ``None`` is not a value (use delete)."""
        if value is None:
            raise ValueError(f"store {self.name}: put None for {key!r}; use delete()")
        if self._undo is not None and key not in self._undo:
            self._undo[key] = self._overlay.get(key, _ABSENT)
        self._overlay[key] = value

    def delete(self, key: str) -> None:
        """Delete ``key`` in this batch (a tombstone on the changelog)."""
        if self._undo is not None and key not in self._undo:
            self._undo[key] = self._overlay.get(key, _ABSENT)
        self._overlay[key] = _DELETED
        self._deletes = True

    def items(self) -> Iterator[tuple[str, Any]]:
        """Yield every (key, value) as of this batch."""
        overlay = self._overlay
        for key, value in self._base.data.items():
            if key not in overlay:
                yield key, value
        for key, value in overlay.items():
            if value is not _DELETED:
                yield key, value

    def __len__(self) -> int:
        return sum(1 for _ in self.items())

    @property
    def committed_size(self) -> int:
        """Return the number of keys as of the last committed batch."""
        return len(self._base)

    def changed_since_savepoint(self) -> Iterator[tuple[str, Any]]:
        """Yield (key, value now) of each key written since the savepoint; None if deleted."""
        if self._undo is None:
            return
        overlay = self._overlay
        for key in self._undo:
            value = overlay.get(key, _ABSENT)
            if value is not _ABSENT:
                yield key, None if value is _DELETED else value

    def changes(self) -> Iterator[tuple[str, Any]]:
        """Yield (key, last value) of every key changed in this batch; None for deleted."""
        for key, value in self._overlay.items():
            yield key, None if value is _DELETED else value

    @property
    def dirty(self) -> bool:
        """Tell whether this batch changed anything."""
        return bool(self._overlay)

    def commit(self) -> None:
        """Merge the batch overlay into the map (after the transaction committed)."""
        data = self._base.data
        if self._deletes:
            for key, value in self._overlay.items():
                if value is _DELETED:
                    data.pop(key, None)
                else:
                    data[key] = value
        else:  # puts only, the usual batch: one C-level merge
            data.update(self._overlay)
        self._overlay.clear()
        self.encoded.clear()
        self._deletes = False
        self._undo = None

    def rollback(self) -> None:
        """Drop the batch overlay (the transaction aborted)."""
        self._overlay.clear()
        self.encoded.clear()
        self._deletes = False
        self._undo = None

    def clear(self) -> None:
        """Drop everything, committed or not (before the store is rebuilt from its changelog)."""
        self.rollback()
        self._base.data.clear()

    def savepoint(self) -> None:
        """Start recording what to undo if the next processor call fails."""
        self._undo = {}

    def release_savepoint(self) -> None:
        """Keep the changes since the savepoint."""
        self._undo = None

    def rollback_to_savepoint(self) -> None:
        """Undo the changes since the savepoint."""
        if self._undo is None:
            return
        encoded = self.encoded
        for key, previous in self._undo.items():
            encoded.pop(key, None)  # re-encoded at commit if an earlier call changed it
            if previous is _ABSENT:
                self._overlay.pop(key, None)
            else:
                self._overlay[key] = previous
        self._undo = None

    def restore(self, key: str, value: Any) -> None:
        """Apply one changelog record while restoring: ``None`` deletes."""
        if value is None:
            self._base.data.pop(key, None)
        else:
            self._base.data[key] = value
