"""Where the workflow's jobs keep the XLA programs they compile: JAX's persistent compilation cache.

Every job is a new Python process that compiles its JAX programs afresh, and jobs of the same shapes
compile the same programs: Experiment A's runs, HMC's and SG-MCMC's chains, the same job after an
interruption or a config change that reruns it. With the config's ``compilation_cache`` set (a
directory, relative to the working directory), the Snakefile points every job at one cache through
JAX's own environment variables, which the jobs inherit, on this machine and in a cluster's jobs
alike. A job then reads a program that another has compiled instead of compiling it again; the
program read is the one compiled, so the numbers are the same to the last bit.

A setting of the user's own environment wins: ``JAX_COMPILATION_CACHE_DIR=...`` before ``snakemake``
puts the cache elsewhere. Standard library only, as all of ``compactbnn.config``.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

DIRECTORY_VARIABLE = "JAX_COMPILATION_CACHE_DIR"


def environment(directory: str | os.PathLike) -> dict[str, str]:
    """JAX's settings for a cache in ``directory`` (made absolute): every program is kept, however quickly it
    compiled and however small it is (JAX's defaults keep only programs that took a second or more, which
    would leave out most of the workflow's)."""
    return {
        DIRECTORY_VARIABLE: os.path.abspath(directory),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }


def use(directory: str | os.PathLike, environ: MutableMapping[str, str] = os.environ) -> None:
    """Set ``environment(directory)`` in ``environ`` (the jobs inherit it), leaving alone what is already set there."""
    for name, value in environment(directory).items():
        environ.setdefault(name, value)
