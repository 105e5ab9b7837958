"""An append-only JSON Lines file with a size cap that rotates once: the file policy of the event log and the
training doctor's decision log.

Lines are appended to ``path``; before a line would push the file past ``max_file_bytes``, the file is renamed to
``path + ".1"`` (replacing an older ``.1``) and a fresh file is started. So each of the two files is at most
``max_file_bytes`` bytes, the disk use at most twice that, and the newest lines are kept. The file is opened lazily
(on the first write), in append mode, and flushed once per :meth:`CappedJsonlFile.write` call.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import IO, Any


class CappedJsonlFile:
    """A capped, once-rotated append-only file (see the module docstring). Picklable: a copy reopens lazily."""

    def __init__(self, path: str | os.PathLike[str], max_file_bytes: int) -> None:
        if not isinstance(max_file_bytes, int) or max_file_bytes < 1024:
            raise ValueError(f"max_file_bytes must be an int >= 1024, got {max_file_bytes!r}")
        self.path = os.fspath(path)
        self.max_file_bytes = max_file_bytes
        self._file: IO[bytes] | None = None
        self._file_bytes = 0

    def write(self, lines: Sequence[bytes]) -> None:
        """Append ``lines`` (each at most ``max_file_bytes``; the caller drops longer ones), then flush once."""
        if not lines:
            return
        if self._file is None:
            self._file = self._open()
        for line in lines:
            if self._file_bytes + len(line) > self.max_file_bytes:
                self._rotate()
            self._file.write(line)
            self._file_bytes += len(line)
        self._file.flush()

    def close(self) -> None:
        """Close the file. Idempotent; a later write reopens it."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_file"] = None
        return state

    def _open(self) -> IO[bytes]:
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        handle = open(self.path, "ab")  # noqa: SIM115 -- kept open across writes, closed in close()
        self._file_bytes = os.fstat(handle.fileno()).st_size
        return handle

    def _rotate(self) -> None:
        assert self._file is not None
        self._file.close()
        os.replace(self.path, self.path + ".1")
        self._file = open(self.path, "ab")  # noqa: SIM115
        self._file_bytes = 0
