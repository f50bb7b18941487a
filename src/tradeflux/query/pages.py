"""Pages of the read model's listings: ``items[offset : offset + limit]`` of ``total`` matches."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

import msgspec

T = TypeVar("T")


class Page(msgspec.Struct, Generic[T], kw_only=True):
    """One page of a listing: ``items[offset : offset + limit]`` of ``total`` matches."""

    total: int
    limit: int
    offset: int
    items: list[T]


def page(matches: Iterable[T], limit: int, offset: int) -> Page[T]:
    """Page over ``matches``, counting all of them."""
    items: list[T] = []
    total = 0
    for item in matches:
        if offset <= total < offset + limit:
            items.append(item)
        total += 1
    return Page(total=total, limit=limit, offset=offset, items=items)
