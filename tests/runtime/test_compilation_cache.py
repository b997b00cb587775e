"""The CLI's persistent compilation cache: where it goes, and how to turn it off."""

import jax
import pytest

from sfae_jax.runtime import compilation_cache


@pytest.fixture
def restore_cache_dir():
  before = jax.config.jax_compilation_cache_dir
  yield
  jax.config.update("jax_compilation_cache_dir", before)


def test_cache_folder_is_made_and_used(tmp_path, monkeypatch, restore_cache_dir):
  monkeypatch.delenv("SFAE_JIT_CACHE", raising=False)
  target = tmp_path / "jit" / "nested"
  assert compilation_cache.enable(str(target)) == str(target)
  assert target.is_dir()
  assert jax.config.jax_compilation_cache_dir == str(target)


def test_cache_can_be_turned_off_or_fail_quietly(tmp_path, monkeypatch,
                                                 restore_cache_dir):
  before = jax.config.jax_compilation_cache_dir
  monkeypatch.setenv("SFAE_JIT_CACHE", "0")
  assert compilation_cache.enable(str(tmp_path / "x")) is None
  monkeypatch.delenv("SFAE_JIT_CACHE")
  blocker = tmp_path / "file"
  blocker.write_text("not a folder")
  assert compilation_cache.enable(str(blocker / "jit")) is None
  assert jax.config.jax_compilation_cache_dir == before
