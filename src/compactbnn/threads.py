"""Keep a process to a number of compute threads: XLA's CPU thread pools, BLAS/OpenMP, the LAP pool.

A Snakemake job declares ``threads``, and ``--cores N`` (or a SLURM allocation) counts on it;
but XLA sizes its CPU thread pools from the CPUs the process may run on (its affinity mask),
not from the job's threads, so ``--cores N`` would run N jobs x N threads. XLA has no flag for
its pool size. ``limit(threads)`` therefore narrows the process's CPU affinity to ``threads``
CPUs while JAX starts its backends (the pools are sized then), and widens every thread back to
the original mask afterwards, so the operating system may still place those threads on any
allowed CPU (pinning two jobs to the same CPUs would serialise them). BLAS and OpenMP libraries
already loaded get the limit through ``threadpoolctl``, libraries loaded later and child
processes through the usual environment variables, and ``usable_cpus`` (the LAP pool of
``rebasin``) returns at most ``threads``.

Must run before anything starts JAX's backends (the first array operation or ``jax.devices()``).
Measured on jaxlib 0.10.2 with 2 CPUs (tests/test_threads.py), an HMC chain of a 64-256-10 MLP
on digits: after ``limit(1)`` two or more of its threads were runnable in 1 % of 5-ms samples and
it used 0.82 CPU seconds per wall second; without the limit, 64 % and 1.73.
"""

from __future__ import annotations

import os

BLAS_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "GOTO_NUM_THREADS",
                 "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
_limit: int | None = None


def affinity() -> set[int]:
    """The CPUs this process may run on (all of os.cpu_count() where sched_getaffinity is missing: macOS, Windows)."""
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


def usable_cpus() -> int:
    """CPUs this process should keep busy: its affinity, at most the ``limit`` given (a SLURM job's one CPU stays one)."""
    count = max(1, len(affinity()))
    return count if _limit is None else min(count, _limit)


def backends_started() -> bool:
    """Whether JAX has started its backends already (then its thread pools are sized).

    Reads JAX's private registry of started backends; a JAX without it answers False (then
    ``limit`` narrows the affinity all the same, which is harmless if the pools exist already).
    """
    try:
        from jax._src import xla_bridge
    except ImportError:  # pragma: no cover - another JAX layout
        return False
    return bool(getattr(xla_bridge, "_backends", {}))


def limit(threads: int) -> None:
    """Make this process compute with ``threads`` threads (XLA CPU pools, BLAS/OpenMP, the LAP pool).

    Raises RuntimeError if JAX's backends have started already (their pools can no longer be
    sized), ValueError for threads < 1.
    """
    global _limit
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
    if backends_started():
        raise RuntimeError("threads.limit must run before JAX starts its backends (the first JAX array or jax.devices())")
    for name in BLAS_ENV_VARS:
        os.environ[name] = str(threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn depends on it
        pass
    else:
        threadpool_limits(limits=threads)
    _limit = threads
    import jax

    allowed = affinity()
    if not hasattr(os, "sched_setaffinity") or threads >= len(allowed):
        jax.devices()  # nothing to narrow; start the backends all the same
        return
    os.sched_setaffinity(0, set(sorted(allowed)[:threads]))
    try:
        jax.devices()  # starts every backend: XLA sizes its CPU pools from the narrowed mask
    finally:
        for tid in os.listdir("/proc/self/task"):
            try:
                os.sched_setaffinity(int(tid), allowed)
            except (ProcessLookupError, PermissionError):  # a thread that ended meanwhile
                pass
