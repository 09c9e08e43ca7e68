"""The batches a results file waits for, written next to it (`OUTPUT.batches.jsonl`) before each wait.

One JSON line per event, each fsynced before the step it guards:

- `intent`: a batch is about to be created, with the items (id and request hash) it will hold and the
  time. Written before the create call, so a crash between the call and the next line leaves a trace: a
  resume looks for a batch created since then with as many requests (`engine.reconcile`).
- `batch`: the create call answered with this id. From here on a resume re-attaches to it.
- `void`: the create call was answered with an error, so no batch came of that intent.
- `done`: every result of the batch has been recorded (and the results file fsynced), with the items that
  ended transiently (errored or expired) and were to be submitted again.

A crash can tear only the last line, which loading drops. The journal is removed once a run has recorded
every item and waits for nothing.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ..atomic import fsync_directory
from ..errors import OutputWriteError


def journal_path(output: Path) -> Path:
    return output.with_name(output.name.removesuffix(".jsonl") + ".batches.jsonl")


@dataclass
class Intent:
    token: str
    at: float  # time.time() just before the create call
    items: list[tuple[str, str]]  # (item id, request hash), in submission order
    batch_id: str | None = None
    void: bool = False
    done: bool = False
    transient: dict[str, str] = field(default_factory=dict)  # item id -> outcome, once done

    @property
    def ids(self) -> list[str]:
        return [item_id for item_id, _ in self.items]


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.intents: dict[str, Intent] = {}
        self._fd = -1
        self._load()

    # -- reading ----------------------------------------------------------------------------------------

    def _load(self) -> None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        whole = data[: data.rfind(b"\n") + 1]
        for line in whole.splitlines():
            try:
                self._apply(orjson.loads(line))
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                raise OutputWriteError(
                    f"{self.path}: a line of the batch journal cannot be read ({exc})"
                ) from None
        if len(whole) != len(data):  # a line torn by a crash: its step never happened
            with open(self.path, "r+b") as fh:
                fh.truncate(len(whole))

    def _apply(self, entry: dict[str, Any]) -> None:
        kind = entry["kind"]
        if kind == "intent":
            items = [(str(item_id), str(request_hash)) for item_id, request_hash in entry["items"]]
            self.intents[entry["token"]] = Intent(entry["token"], float(entry["at"]), items)
            return
        intent = self.intents[entry["token"]]
        if kind == "batch":
            intent.batch_id = entry["batch_id"]
        elif kind == "void":
            intent.void = True
        elif kind == "done":
            intent.done = True
            intent.transient = dict(entry.get("transient") or {})

    @property
    def waiting(self) -> list[Intent]:
        """Batches created and not yet recorded: what a resume re-attaches to."""
        return [i for i in self.intents.values() if i.batch_id is not None and not i.done and not i.void]

    @property
    def unresolved(self) -> list[Intent]:
        """Intents whose create call may or may not have made a batch (a crash, or no answer)."""
        return [i for i in self.intents.values() if i.batch_id is None and not i.void]

    def submissions(self) -> Counter[str]:
        """How many batches each item was (or may have been) submitted in: its attempts so far."""
        counts: Counter[str] = Counter()
        for intent in self.intents.values():
            if not intent.void:
                counts.update(intent.ids)
        return counts

    def retries(self) -> dict[str, Counter[str]]:
        """Each item's transient outcomes so far, by kind (errored types, `expired`)."""
        found: dict[str, Counter[str]] = {}
        for intent in self.intents.values():
            for item_id, outcome in intent.transient.items():
                found.setdefault(item_id, Counter())[outcome] += 1
        return found

    def known_batch_ids(self) -> set[str]:
        return {i.batch_id for i in self.intents.values() if i.batch_id is not None}

    # -- writing ----------------------------------------------------------------------------------------

    def intend(self, items: list[tuple[str, str]]) -> Intent:
        intent = Intent(secrets.token_hex(8), time.time(), items)
        self._append({"kind": "intent", "token": intent.token, "at": intent.at, "items": items})
        self.intents[intent.token] = intent
        return intent

    def created(self, intent: Intent, batch_id: str) -> None:
        self._append({"kind": "batch", "token": intent.token, "batch_id": batch_id})
        intent.batch_id = batch_id

    def voided(self, intent: Intent) -> None:
        self._append({"kind": "void", "token": intent.token})
        intent.void = True

    def finished(self, intent: Intent, transient: dict[str, str]) -> None:
        self._append({"kind": "done", "token": intent.token, "transient": transient})
        intent.done = True
        intent.transient = transient

    def _append(self, entry: dict[str, Any]) -> None:
        if self._fd == -1:
            new = not self.path.exists()
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            if new:
                fsync_directory(self.path.parent)
        data = orjson.dumps(entry) + b"\n"
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)
        except OSError as exc:
            raise OutputWriteError(f"{self.path}: cannot write the batch journal ({exc.strerror})") from None

    def close(self) -> None:
        if self._fd != -1:
            os.close(self._fd)
            self._fd = -1

    def remove(self) -> None:
        """Once nothing is waited for: the journal has no more to say."""
        self.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
