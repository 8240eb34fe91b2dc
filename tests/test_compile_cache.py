"""``--compile-cache``: compiled programs kept between runs, the same rows, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from cfbench.devices import DeviceError, use_compile_cache

ROOT = Path(__file__).resolve().parents[1]


def _run(results: Path, cache: Path) -> subprocess.CompletedProcess:
    # Every program is cached (JAX caches only those compiling ≥ 1 s by default), so hits are visible.
    env = {**os.environ, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PLATFORMS": "cpu"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    return subprocess.run([sys.executable, "-m", "cfbench.cli", "run", "--dataset", "ml-latest-small", "--samplers",
                           "random-users", "--budgets", "20", "--seeds", "0", "--models", "ease", "--results-dir",
                           str(results), "--compile-cache", str(cache), "--no-report", "-q"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def _rows(folder: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(folder.rglob("*.json")) if ".claims" not in p.parts}


def test_a_second_run_loads_the_compiled_programs_and_computes_the_same_rows(tmp_path):
    cache = tmp_path / "jax-cache"
    first = _run(tmp_path / "a", cache)
    assert first.returncode == 0, first.stderr
    entries = {p.name for p in cache.iterdir()}
    assert entries, "the first run cached nothing"
    second = _run(tmp_path / "b", cache)
    assert second.returncode == 0, second.stderr
    assert {p.name for p in cache.iterdir()} == entries  # every program was found, none compiled anew
    a, b = _rows(tmp_path / "a"), _rows(tmp_path / "b")
    assert a.keys() == b.keys() and a
    for name in a:
        assert a[name]["metrics"] == b[name]["metrics"] and a[name]["lambda"] == b[name]["lambda"]
        assert b[name]["suite"]["compile_cache"] == str(cache)


def test_the_cache_folder_is_created_even_after_jax_compiled_and_an_unusable_one_is_a_one_line_error(tmp_path):
    from jax.experimental.compilation_cache import compilation_cache

    previous = jax.config.jax_compilation_cache_dir, jax.config.jax_persistent_cache_min_compile_time_secs
    jax.jit(lambda x: x + 1)(1.0)  # this process has compiled (and looked for a cache) already
    try:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        assert use_compile_cache(tmp_path / "new" / "cache") == tmp_path / "new" / "cache"
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "new" / "cache")
        jax.jit(lambda x: x * 3.0 - 7.0)(2.0).block_until_ready()
        assert any((tmp_path / "new" / "cache").iterdir()), "the program compiled after the call was not cached"
        (tmp_path / "file").write_text("")
        with pytest.raises(DeviceError, match="cannot use .*file/cache as the compilation cache.*--compile-cache") as e:
            use_compile_cache(tmp_path / "file" / "cache")
        assert "\n" not in str(e.value)
    finally:
        jax.config.update("jax_compilation_cache_dir", previous[0])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", previous[1])
        compilation_cache.reset_cache()
