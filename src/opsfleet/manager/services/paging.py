"""One page of a list: the shape every paged REST list and CLI listing shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from opsfleet.common.errors import InvalidArgument

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    page: int
    page_size: int
    total: int

    @property
    def pages(self) -> int:
        return (self.total + self.page_size - 1) // self.page_size


def page_window(page: int, page_size: int) -> tuple[int, int]:
    """(offset, limit) for a 1-based page; InvalidArgument naming the parameter when out of range."""
    if page < 1:
        raise InvalidArgument("page must be >= 1")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidArgument(f"page_size must be 1..{MAX_PAGE_SIZE}")
    return (page - 1) * page_size, page_size
