"""A persistent, process-shared store of text embeddings, keyed by encoder model and text.

The heuristic advisor's texts come from a finite set of clauses, so after the first run every clause an env
process needs is already on disk: the process answers from SQLite and never loads MiniLM at all (a load costs
seconds and ~100 MB per SubprocVecEnv worker). SQLite (standard library) serialises concurrent writers from
several env processes; a store that cannot be opened or written (read-only home, full disk) is switched off with
one warning and the encoder simply computes every vector.
"""

from __future__ import annotations

import sqlite3
import threading
import warnings
from pathlib import Path

import numpy as np
from traingym.protocol.cache_dir import cache_root, optional_caches_enabled


def default_store_path() -> Path | None:
    """``$TRAINGYM_CACHE_DIR/embeddings.sqlite3`` (default ``~/.cache/traingym/``); None when set to ``off``
    (:mod:`traingym.protocol.cache_dir`)."""
    return cache_root() / "embeddings.sqlite3" if optional_caches_enabled() else None


class EmbeddingStore:
    """``get`` / ``put`` float32 vectors by ``(model, text)`` in one SQLite file.

    Args:
        path: the database file (created with its folder on first use).
        model: the encoder's identity (name and version); vectors of another model are never returned.
        dim: the vector size; a stored blob of another size is treated as a miss.
    """

    def __init__(self, path: str | Path, model: str, dim: int) -> None:
        self.path = Path(path)
        self.model = model
        self.dim = int(dim)
        self._conn: sqlite3.Connection | None = None
        self._disabled = False
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, object]:
        """Picklable: a connection is never shipped to another process; the copy reopens the file."""
        state = self.__dict__.copy()
        state.update(_conn=None, _lock=None)
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def get(self, text: str) -> np.ndarray | None:
        """The stored vector of ``text`` (read-only float32), or None."""
        conn = self._connection()
        if conn is None:
            return None
        try:
            with self._lock:
                row = conn.execute("SELECT vector FROM embeddings WHERE model = ? AND text = ?",
                                   (self.model, text)).fetchone()
        except sqlite3.Error as error:
            self._disable(error)
            return None
        if row is None or len(row[0]) != 4 * self.dim:
            return None
        vector = np.frombuffer(row[0], dtype=np.float32).copy()
        vector.setflags(write=False)
        return vector

    def put(self, text: str, vector: np.ndarray) -> None:
        """Store the vector of ``text`` (a no-op once the store is disabled)."""
        conn = self._connection()
        if conn is None:
            return
        blob = np.ascontiguousarray(vector, dtype=np.float32).reshape(self.dim).tobytes()
        try:
            with self._lock, conn:
                conn.execute("INSERT OR REPLACE INTO embeddings (model, text, vector) VALUES (?, ?, ?)",
                             (self.model, text, blob))
        except sqlite3.Error as error:
            self._disable(error)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> sqlite3.Connection | None:
        if self._disabled:
            return None
        if self._conn is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")  # readers never wait for a writer in another process
                conn.execute("CREATE TABLE IF NOT EXISTS embeddings (model TEXT NOT NULL, text TEXT NOT NULL, "
                             "vector BLOB NOT NULL, PRIMARY KEY (model, text))")
                conn.commit()
            except (OSError, sqlite3.Error) as error:
                self._disable(error)
                return None
            self._conn = conn
        return self._conn

    def _disable(self, error: Exception) -> None:
        self._disabled = True
        self.close()
        warnings.warn(f"embedding store {self.path} disabled ({type(error).__name__}: {error}); text vectors are "
                      "computed in every process", RuntimeWarning, stacklevel=3)
