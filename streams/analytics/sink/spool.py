"""Append-only local spool of blocks ClickHouse did not take: JSON lines, fsync'ed, replayed later.

One line per block: {"token", "names", "columns"}. The token travels with the block so a replay of
a block that did reach the server (an insert that failed after the server stored it) is dropped by
ClickHouse's insert deduplication. Column names travel too, so an old spool still replays after
columns are added. A torn last line (a crash mid-write) is skipped with a warning.

A spool file belongs to one sink in one process: `<name>.lock` is held with an exclusive flock.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from streams.analytics.sink.request_log import Block
from streams.errors import SpoolError

logger = logging.getLogger(__name__)


class Spool:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()  # appends come from the sink thread and, rarely, from add()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._lock_file: IO[bytes] = path.with_suffix(".lock").open("ab")
        except OSError as exc:
            raise SpoolError(f"cannot open spool {path}: {exc}") from exc
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._lock_file.close()
            raise SpoolError(
                f"spool {path} is in use by another process; give each its own"
            ) from exc
        self._end_torn_line()
        self.depth = sum(block.rows for _, block in self._read(self._size()))  # rows waiting

    def _end_torn_line(self) -> None:
        # A crash mid-write leaves a line without its newline; close it so the next append
        # starts a fresh line instead of corrupting itself too.
        if self._size() == 0:
            return
        with self.path.open("rb+") as handle:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                handle.write(b"\n")

    def _size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    @property
    def size_bytes(self) -> int:
        """Bytes on disk waiting for replay."""
        return self._size()

    def append(self, blocks: Sequence[Block]) -> None:
        """Write blocks durably (write + fsync) before they count as handled."""
        data = b"".join(_encode(block) for block in blocks)
        with self._lock:
            try:
                with self.path.open("ab") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
            except OSError as exc:
                raise SpoolError(f"cannot write spool {self.path}: {exc}") from exc
            self.depth += sum(block.rows for block in blocks)

    def replay(self) -> Iterator[tuple[int, Block]]:
        """Yield (offset after the block, block) for what is spooled now; later appends wait."""
        return self._read(self._size())

    def drop_prefix(self, offset: int, rows: int) -> None:
        """Forget the first `offset` bytes (replayed blocks holding `rows` rows), atomically."""
        with self._lock:
            tmp = self.path.with_suffix(".tmp")
            with self.path.open("rb") as src, tmp.open("wb") as dst:
                src.seek(offset)
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
                dst.flush()
                os.fsync(dst.fileno())
            os.replace(tmp, self.path)
            self.depth = max(0, self.depth - rows)

    def _read(self, end: int) -> Iterator[tuple[int, Block]]:
        if end == 0:
            return
        with self.path.open("rb") as src:
            offset = 0
            while offset < end and (line := src.readline()):
                offset += len(line)
                try:
                    raw = json.loads(line)
                    block = Block(raw["token"], tuple(raw["names"]), raw["columns"])
                except (ValueError, KeyError, TypeError):
                    logger.warning("skipping a torn spool line at byte %d of %s", offset, self.path)
                    continue
                yield offset, block

    def close(self) -> None:
        fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        self._lock_file.close()


def _encode(block: Block) -> bytes:
    line = json.dumps({"token": block.token, "names": block.names, "columns": block.columns})
    return line.encode() + b"\n"
