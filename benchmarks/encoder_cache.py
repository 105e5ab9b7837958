"""Figure ``encoder_cache_hit_rate``: the diagnosis-text encoder's cache hit rate over many episodes.

One env with the default advisor and encoder (``TrainingEnvConfig`` defaults) plays ``episodes`` episodes with
a seeded random policy; the figure is the encoder cache's hits / lookups at the end
(``TrainingEnv.advisor_accounting["encoder_cache_hit_rate"]``), with the number of distinct texts (the
misses a perfect exact-text cache would still have).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from traingym.envs.training_env import TrainingEnv

from benchmarks.timing import rounded


def measure_encoder_cache(family: str, env_kwargs: dict[str, Any], *, episodes: int, seed: int = 0
                          ) -> dict[str, Any]:
    env = TrainingEnv(task=family, **env_kwargs)
    if "diagnosis" not in env.config.obs_keys:
        env.close()
        return {"value": None, "episodes": 0, "reason": "the env config has no 'diagnosis' observation key"}
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    started = time.perf_counter()
    for episode in range(episodes):
        _, info = env.reset(seed=seed + episode)
        texts.append(info["advisor"]["text"])
        done = False
        while not done:
            _, _, terminated, truncated, info = env.step(rng.integers(0, 3, size=4))
            texts.append(info["advisor"]["text"])
            done = terminated or truncated
    elapsed = time.perf_counter() - started
    rate = env.advisor_accounting.get("encoder_cache_hit_rate")
    env.close()
    return {
        "value": rounded(rate),
        "episodes": episodes,
        "lookups": len(texts),
        "distinct_texts": len(set(texts)),
        "exact_cache_bound": rounded(1 - len(set(texts)) / len(texts)),
        "encoder": env.config.encoder,
        "advisor": env.config.advisor,
        "elapsed_s": rounded(elapsed, 1),
        "reason": None if rate is not None else "the advisor channel reported no encoder_cache_hit_rate",
    }
