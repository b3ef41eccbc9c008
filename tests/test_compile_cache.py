"""The jobs' shared compilation cache (config key compilation_cache, compactbnn.config.compile_cache)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from compactbnn.config import compile_cache

# A process that compiles one program and prints how many programs it read from JAX's persistent cache.
COMPILE_ONE = """
import jax, jax.numpy as jnp
from jax import monitoring
hits = []
monitoring.register_event_listener(lambda event, **kwargs: hits.append(event) if event == "/jax/compilation_cache/cache_hits" else None)
print(float(jax.jit(lambda x: jnp.tanh(x) @ x.T)(jnp.ones((3, 3))).sum()), len(hits))
"""


def compile_cache_free_environment() -> dict[str, str]:
    """This process's environment without any JAX setting (of a cache, say) of its own."""
    import os

    return {key: value for key, value in os.environ.items() if not key.startswith("JAX_")}


def test_environment_keeps_every_program_in_an_absolute_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = compile_cache.environment(".snakemake/jax-cache")
    assert settings == {"JAX_COMPILATION_CACHE_DIR": str(tmp_path / ".snakemake" / "jax-cache"),
                        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


def test_the_users_own_setting_wins(tmp_path):
    environ = {"JAX_COMPILATION_CACHE_DIR": "/elsewhere"}
    compile_cache.use(tmp_path / "cache", environ)
    assert environ["JAX_COMPILATION_CACHE_DIR"] == "/elsewhere"
    assert environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] == "0"


def test_a_second_process_reads_the_program_the_first_compiled(tmp_path):
    environ = {}
    compile_cache.use(tmp_path / "cache", environ)

    def run(env):
        result = subprocess.run([sys.executable, "-c", COMPILE_ONE], capture_output=True, text=True, timeout=300,
                                env={**compile_cache_free_environment(), **env})
        assert result.returncode == 0, result.stderr[-3000:]
        value, hits = result.stdout.split()
        return value, int(hits)

    first, second = run(environ), run(environ)
    assert first[1] == 0 and second[1] >= 1 and second[0] == first[0]
    assert any((tmp_path / "cache").iterdir())
    assert run({})[1] == 0  # without the settings, nothing is read


@pytest.mark.slow
def test_the_workflows_jobs_write_the_configured_cache(smoke_run):
    # config.yaml's default, under the session's smoke run (a path with a space, a quote, & and é in it)
    cache = smoke_run.workdir / ".snakemake" / "jax-cache"
    assert len(list(cache.iterdir())) > 50
