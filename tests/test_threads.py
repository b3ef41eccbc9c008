"""A one-thread job computes on one core: compactbnn.threads through the workflow's start(), measured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from compactbnn import threads

REPO = Path(__file__).resolve().parents[1]

# A small real job: start() as Snakemake's script jobs call it, then an HMC chain of a 64-256-10
# MLP on digits (hmc_chain's run_chain, resumed after its first chunk so that compilation is
# not measured). Measured: CPU seconds per wall second of the sampling, and the CPU ticks of
# each thread, to count the threads that computed (those with over 20 % of the ticks).
JOB = r"""
import json, os, resource, sys, time
sys.path.insert(0, os.path.join(sys.argv[1], "workflow", "scripts"))
import common
from compactbnn import data, hmc, rebasin
import jax

class Job:
    log = [sys.argv[2]]
    rule = "thread_test"
    threads = int(sys.argv[3])
    params = {}

if sys.argv[3] != "0":
    common.start(Job)

def ticks():
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            fields = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        out[tid] = int(fields[11]) + int(fields[12])
    return out

digits = data.load("digits")
config = hmc.HMCConfig(step_size=1e-3, num_steps=20, num_iterations=40, keep_first=0, keep_last=39, num_kept=4, chunk_size=10)
chain = lambda chunks: hmc.run_chain(digits["x_train"], digits["y_train"], [64, 256, 10], config, jax.random.key(0),
                                     sys.argv[4] + ".chain", progress=False, max_chunks=chunks)
chain(1)  # compiles; the measurement resumes the chain with the compiled program
before, usage, t0 = ticks(), resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
chain(None)
wall = time.perf_counter() - t0
after, end = ticks(), resource.getrusage(resource.RUSAGE_SELF)
cpu = (end.ru_utime - usage.ru_utime) + (end.ru_stime - usage.ru_stime)
per_thread = sorted((after[t] - before.get(t, 0) for t in after), reverse=True)
busy = sum(1 for t in per_thread if t > 0.2 * sum(per_thread))
json.dump({"cpu_per_wall": cpu / wall, "busy_threads": busy, "per_thread_ticks": per_thread[:6],
           "lap_workers": rebasin._usable_cpus(), "omp": os.environ.get("OMP_NUM_THREADS")}, open(sys.argv[4], "w"))
"""


def run_job(tmp_path, threads_given):
    log, out = tmp_path / f"job{threads_given}.log", tmp_path / f"job{threads_given}.json"
    result = subprocess.run([sys.executable, "-c", JOB, str(REPO), str(log), str(threads_given), str(out)],
                            capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:] + (log.read_text()[-3000:] if log.exists() else "")
    return json.loads(out.read_text())


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux's CPU affinity calls")
def test_one_thread_job_uses_one_core(tmp_path):
    one = run_job(tmp_path, 1)
    assert one["busy_threads"] == 1, one
    assert one["cpu_per_wall"] < 1.3, one  # about one core (generous: Python's own threads add a little)
    assert one["lap_workers"] == 1 and one["omp"] == "1"
    if len(threads.affinity()) >= 2:
        # The control: without start(), the same job computes on several threads.
        unlimited = run_job(tmp_path, 0)
        assert unlimited["busy_threads"] >= 2, unlimited


def test_limit_refuses_started_backends_and_bad_counts():
    import jax.numpy as jnp

    jnp.zeros(1)  # this test process has started JAX
    with pytest.raises(RuntimeError, match="before JAX starts its backends"):
        threads.limit(1)
    with pytest.raises(ValueError, match="threads must be an integer >= 1"):
        threads.limit(0)
