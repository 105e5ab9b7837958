"""The on-disk embedding store: exact round trip, shared across processes, MiniLM loaded only on a miss."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from traingym.advisors.embedding_store import EmbeddingStore
from traingym.advisors.encoders import MiniLMEncoder, minilm_model_id


def test_round_trip_is_exact_and_keyed_by_model(tmp_path: Path) -> None:
    vector = np.random.default_rng(0).standard_normal(8).astype(np.float32)
    store = EmbeddingStore(tmp_path / "e.sqlite3", "model-a", 8)
    assert store.get("some text") is None
    store.put("some text", vector)
    np.testing.assert_array_equal(store.get("some text"), vector)
    assert EmbeddingStore(tmp_path / "e.sqlite3", "model-b", 8).get("some text") is None
    assert EmbeddingStore(tmp_path / "e.sqlite3", "model-a", 16).get("some text") is None  # other size: a miss


def test_unwritable_store_warns_once_and_the_encoder_still_works(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder should be")
    store = EmbeddingStore(blocker / "e.sqlite3", minilm_model_id(), 384)
    with pytest.warns(RuntimeWarning, match="disabled"):
        vector = MiniLMEncoder(store=store).encode("keep the current settings")
    assert vector.shape == (384,) and abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
    np.testing.assert_array_equal(vector, MiniLMEncoder(store=False).encode("keep the current settings"))


def test_a_warm_store_serves_another_process_without_loading_minilm(tmp_path: Path) -> None:
    texts = ["training is healthy", "suggest a lower learning rate"]
    computed = [MiniLMEncoder(store=EmbeddingStore(tmp_path / "embeddings.sqlite3", minilm_model_id(), 384)).encode(t)
                for t in texts]
    script = textwrap.dedent(f"""
        import numpy as np, sys
        from traingym.advisors import encoders
        vectors = [encoders.MiniLMEncoder().encode(t) for t in {texts!r}]
        np.save(sys.argv[1], np.stack(vectors))
        print("loaded" if encoders._MINILM is not None else "not loaded")
    """)
    out = tmp_path / "v.npy"
    result = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TRAINGYM_CACHE_DIR": str(tmp_path)}, check=True)
    assert result.stdout.strip() == "not loaded"
    np.testing.assert_array_equal(np.load(out), np.stack(computed))
