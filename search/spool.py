"""A durable, ordered spool of the records a search has yet to deliver to MLflow. Stdlib only.

Each record is one JSON line, appended and flushed to disk before it is handed to the delivery thread; a
second file holds the number of records already delivered, replaced atomically after each delivery. So a
driver that dies while the tracking server is away loses nothing: the next driver of the same search
(``--resume``) delivers what is left, in order. A record delivered just before a crash, whose mark was not yet
written, is delivered again; every record is written so that delivering it twice does no harm (a run is found
before it is created, a tag or a closing is the same twice, a metric point repeats at its own step)."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["LogToRun", "OpenRun", "Spool", "SpoolRecord", "from_json", "to_json"]


@dataclass(frozen=True)
class OpenRun:
    """Find a trial's run, else create it with its name, tags, params and dataset inputs."""

    trial: str  # Tune's trial id, which the run is tagged with
    name: str
    tags: dict[str, str]
    params: dict[str, str]
    inputs: list[dict[str, Any]] = field(default_factory=list)  # shared.dataset_inputs


@dataclass(frozen=True)
class LogToRun:
    """Metrics and tags for a run, found by its trial (``trial``) or named (``run``); ``end`` closes it with that
    MLflow status. ``epoch``: an epoch's metrics, which a run that holds that epoch already does not log again."""

    trial: str | None = None
    run: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    step: int = 0
    tags: dict[str, str] = field(default_factory=dict)
    end: str | None = None
    epoch: bool = False


SpoolRecord = OpenRun | LogToRun
_OPS: dict[str, type[OpenRun] | type[LogToRun]] = {"open": OpenRun, "log": LogToRun}  # the JSON's "op" key


def to_json(record: SpoolRecord) -> dict[str, Any]:
    """The record as its spool line holds it: its fields and its kind as ``op``."""
    op = next(name for name, kind in _OPS.items() if isinstance(record, kind))
    return {"op": op, **dataclasses.asdict(record)}


def from_json(line: dict[str, Any]) -> SpoolRecord:
    """A spool line back as its record (a field an older line lacks takes its default)."""
    kind = _OPS[line["op"]]
    names = {f.name for f in dataclasses.fields(kind)}
    return kind(**{k: v for k, v in line.items() if k in names})


class Spool:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.mark = path.with_name(path.name + ".delivered")
        self._lock = threading.Lock()
        self._size: int | None = None  # records in the file, read once then counted

    def append(self, record: SpoolRecord) -> int:
        """Write ``record`` durably; returns its sequence number (0 for the first record of the file)."""
        line = json.dumps(to_json(record), separators=(",", ":")) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            seq = self._count()
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            self._size = seq + 1
            return seq

    def pending(self) -> list[tuple[int, SpoolRecord]]:
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

    def _records(self) -> list[SpoolRecord]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        records = []
        for line in lines:
            try:
                records.append(from_json(json.loads(line)))
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
