"""Where answers go: JSON (the envelope's ``data``) or rich tables on stdout; notes on stderr.

Tables fit the terminal; when stdout is not a terminal they are laid out for
:data:`PIPE_WIDTH` columns unless ``$COLUMNS`` says otherwise.

Also the small value formatters every table uses (times, ages, numbers, coloured states).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

STATUS_STYLES = {
    "online": "green",
    "running": "green",
    "ok": "green",
    "success": "green",
    "offline": "red",
    "failed": "bold red",
    "crashed": "bold red",
    "error": "bold red",
    "stopped": "dim",
    "removed": "dim",
    "disabled": "red",
    "starting": "yellow",
    "stopping": "yellow",
    "restarting": "yellow",
    "backoff": "yellow",
    "unknown": "yellow",
}
PIPE_WIDTH = 160
ROLE_STYLES = {"admin": "magenta", "operator": "cyan", "viewer": ""}
_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


class Output:
    """One command's output. ``--json`` prints data as JSON; otherwise ``render`` draws tables."""

    def __init__(
        self, *, json_mode: bool, stdout: TextIO | None = None, stderr: TextIO | None = None
    ) -> None:
        self.json_mode = json_mode
        self.console = Console(file=stdout, highlight=False, soft_wrap=False)
        if not self.console.is_terminal and not os.environ.get("COLUMNS"):
            # Piped tables are read with less or grep: lay them out wide rather than folded.
            self.console.width = PIPE_WIDTH
        self.errors = Console(file=stderr, stderr=stderr is None, highlight=False)

    def emit(self, data: Any, render: Callable[[], None]) -> None:
        """``data`` as JSON in JSON mode, else whatever ``render`` prints."""
        if self.json_mode:
            self.json(data)
        else:
            render()

    def json(self, data: Any) -> None:
        self.console.out(json.dumps(data, indent=2, ensure_ascii=False), highlight=False)

    def print(self, *items: Any) -> None:
        self.console.print(*items)

    def show(self, t: Table) -> None:
        """A table, its title on a line of its own (rich would wrap it to the table's width)."""
        if isinstance(t.title, str) and t.title:
            self.message(Text(t.title, style="bold"))
            t.title = None
        self.console.print(t)

    def message(self, text: str | Text) -> None:
        """A sentence for the human on stdout, never wrapped (it may hold paths and URLs)."""
        self.console.print(text if isinstance(text, Text) else Text(text), soft_wrap=True)

    def line(self, text: str) -> None:
        """``text`` verbatim (no markup, no wrapping): log lines, tokens."""
        self.console.out(text, highlight=False)

    def flush(self) -> None:
        """Push what was printed to stdout now (a pipe would hold it back)."""
        self.console.file.flush()

    def note(self, text: str) -> None:
        """A remark for the human on stderr (never mixed into JSON on stdout)."""
        self.errors.print(text, markup=False)


def table(title: str | None, *columns: str, caption: str | None = None) -> Table:
    """A table with ``columns``. Columns do not wrap, except a name ending in ``~`` (free text,
    wrapped first when space is short); a name ending in ``!`` is an identifier, folded rather
    than cut when it must shrink."""
    t = Table(
        title=title,
        caption=caption,
        title_justify="left",
        caption_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )
    for name in columns:
        if name.endswith("~"):
            t.add_column(name[:-1], overflow="fold")
        elif name.endswith("!"):
            t.add_column(name[:-1], no_wrap=True, overflow="fold", min_width=4)
        else:
            t.add_column(name, no_wrap=True)
    return t


def key_values(title: str | None, rows: Iterable[tuple[str, Any]]) -> Table:
    """A two-column table of ``name: value`` rows."""
    t = Table(title=title, title_justify="left", show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold", no_wrap=True)
    t.add_column(overflow="fold")
    for name, value in rows:
        t.add_row(name, value if isinstance(value, Text) else text(value))
    return t


def text(value: Any) -> str:
    if value is None or value == "":
        return "-"
    return str(value)


def status(value: str | None) -> Text:
    """``value`` coloured by what it means (green good, red bad, yellow in between)."""
    word = value or "unknown"
    return Text(word, style=STATUS_STYLES.get(word.lower(), ""))


def success(ok: bool) -> Text:
    return status("ok" if ok else "failed")


def role(value: str) -> Text:
    return Text(value, style=ROLE_STYLES.get(value, ""))


def _moment(value: Any) -> datetime | None:
    if value is None or value in ("", 0):
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def when(value: Any) -> str:
    """An RFC3339 string or Unix seconds as ``YYYY-MM-DD HH:MM:SS`` UTC; ``-`` when unset."""
    moment = _moment(value)
    if moment is None:
        return text(value) if value not in (None, "", 0) else "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def ago(value: Any, now: float | None = None) -> str:
    """How long ago ``value`` was (``42s ago``, ``3m ago``, ``5h ago``, ``2d ago``)."""
    moment = _moment(value)
    if moment is None:
        return "-"
    seconds = int((time.time() if now is None else now) - moment.timestamp())
    if seconds < 0:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def number(value: Any) -> str:
    """A compact number: integers as such, others with at most two decimals."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def size(value: Any) -> str:
    """Bytes in binary units (``1.5GiB``)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return text(value)
    amount = float(value)
    for unit in _BYTE_UNITS:
        if abs(amount) < 1024 or unit == _BYTE_UNITS[-1]:
            return f"{amount:.0f}{unit}" if unit == "B" else f"{amount:.1f}{unit}"
        amount /= 1024
    return f"{amount:.1f}PiB"


def rate(value: Any) -> str:
    """Bytes per second in binary units (``512 B/s``, ``1.5 KiB/s``)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    amount = float(value)
    for unit in _BYTE_UNITS:
        if abs(amount) < 1024 or unit == _BYTE_UNITS[-1]:
            return f"{amount:.0f} {unit}/s" if unit == "B" else f"{amount:.1f} {unit}/s"
        amount /= 1024
    return f"{amount:.1f} PiB/s"


def percent(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    return f"{value:.1f}%"


def metric_value(key: str, value: Any) -> str:
    """A metric value formatted by its key's naming convention (``*_percent``, ``*bytes*``)."""
    if key.endswith("_percent"):
        return percent(value)
    if "bytes" in key or key in ("rx", "tx", "swap_total", "swap_used", "swap_free", "buffers", "cached"):
        return size(value)
    return number(value)
