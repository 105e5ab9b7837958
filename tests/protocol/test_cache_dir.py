"""One cache directory: $TRAINGYM_CACHE_DIR, with $TRAINGYM_CACHE as a deprecated alias."""

from __future__ import annotations

from pathlib import Path

import pytest
from traingym.protocol.cache_dir import DEFAULT_CACHE_DIR, cache_root, optional_caches_enabled


def test_the_cache_dir_variable_names_the_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRAINGYM_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("TRAINGYM_CACHE", "/elsewhere")  # the new name wins, without a warning
    assert cache_root() == tmp_path and optional_caches_enabled()


def test_off_disables_the_optional_stores_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINGYM_CACHE_DIR", "off")
    assert not optional_caches_enabled() and cache_root() == DEFAULT_CACHE_DIR.expanduser()


def test_the_old_name_still_works_with_a_warning(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TRAINGYM_CACHE_DIR")
    monkeypatch.setenv("TRAINGYM_CACHE", str(tmp_path))
    with pytest.warns(FutureWarning, match=r"\$TRAINGYM_CACHE is deprecated; set \$TRAINGYM_CACHE_DIR"):
        assert cache_root() == tmp_path


def test_every_cache_user_reads_the_one_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from traingym.advisors.embedding_store import default_store_path
    from traingym.advisors.smollm import SMOLLM
    from traingym.agents.tuning import family_cache_path

    monkeypatch.setenv("TRAINGYM_CACHE_DIR", str(tmp_path))
    assert default_store_path() == tmp_path / "embeddings.sqlite3"
    assert SMOLLM.cache_dir().parent == tmp_path
    assert family_cache_path("my_pkg.tasks:Fam", {"horizon": 4}).parent == tmp_path / "tuned_defaults"
    monkeypatch.setenv("TRAINGYM_CACHE_DIR", "off")
    assert default_store_path() is None
