"""A durable, ordered spool of the records a search has yet to deliver to MLflow. Stdlib only.

Each record is one JSON line, appended and flushed to disk before it is handed to the delivery thread; a
second file holds the number of records already delivered, replaced atomically after each delivery. So a
driver that dies while the tracking server is away loses nothing: the next driver of the same search
(``--resume``) delivers what is left, in order. A record delivered just before a crash, whose mark was not yet
written, is delivered again; every record is written so that delivering it twice does no harm (a run is found
before it is created, a tag or a closing is the same twice, a metric point repeats at its own step)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any


class Spool:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.mark = path.with_name(path.name + ".delivered")
        self._lock = threading.Lock()
        self._size: int | None = None  # records in the file, read once then counted

    def append(self, record: dict[str, Any]) -> int:
        """Write ``record`` durably; returns its sequence number (0 for the first record of the file)."""
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            seq = self._count()
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            self._size = seq + 1
            return seq

    def pending(self) -> list[tuple[int, dict[str, Any]]]:
        """The records not yet delivered, in order, with their sequence numbers."""
        with self._lock:
            done = self._delivered()
            return [(seq, record) for seq, record in enumerate(self._records()) if seq >= done]

    def delivered(self, seq: int) -> None:
        """Record ``seq`` (and every one before it) has reached MLflow. Once all have, the files are emptied."""
        with self._lock:
            if seq + 1 >= self._count():
                self.path.unlink(missing_ok=True)
                self.mark.unlink(missing_ok=True)
                self._size = 0
                return
            partial = self.mark.with_name(self.mark.name + ".tmp")
            partial.write_text(str(seq + 1))
            os.replace(partial, self.mark)

    def _delivered(self) -> int:
        try:
            return int(self.mark.read_text())
        except (FileNotFoundError, ValueError):
            return 0

    def _records(self) -> list[dict[str, Any]]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        records = []
        for line in lines:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # a line half-written when the machine died: it was never handed on
                break
        return records

    def _count(self) -> int:
        if self._size is None:
            self._drop_torn_tail()
            self._size = len(self._records())
        return self._size

    def _drop_torn_tail(self) -> None:
        """A line half-written when the machine died would glue itself to the next record: cut it off."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        if data and not data.endswith(b"\n"):
            with open(self.path, "r+b") as handle:
                handle.truncate(data.rfind(b"\n") + 1)
