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
# not measured). Measured while it samples: CPU seconds per wall second of the process, and,
# every 5 ms, how many of its threads are runnable (Linux state R: running or waiting for a
# CPU), from /proc. The sampling thread leaves itself out of both.
JOB = r"""
import json, os, resource, sys, threading, time
sys.path.insert(0, os.path.join(sys.argv[1], "workflow", "scripts"))
import common
from compactbnn import data, threads
from compactbnn.inference import hmc
from compactbnn.models import MLP
import jax

class Job:
    log = [sys.argv[2]]
    rule = "thread_test"
    threads = int(sys.argv[3])
    params = {}

if sys.argv[3] != "0":
    common.start(Job)

def tasks():
    for tid in os.listdir("/proc/self/task"):
        try:
            yield int(tid), open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue

counts, done = [], threading.Event()
def watch():
    me = threading.get_native_id()
    while not done.is_set():
        counts.append(sum(1 for tid, f in tasks() if tid != me and f[0] == "R"))
        time.sleep(0.005)

def ticks(exclude):
    return sum(int(f[11]) + int(f[12]) for tid, f in tasks() if tid != exclude)

digits = data.load("digits")
config = hmc.HMCConfig(step_size=1e-3, num_steps=20, num_iterations=40, keep_first=0, keep_last=39, num_kept=4, chunk_size=10)
chain = lambda chunks: hmc.run_chain(MLP((64, 256, 10)), digits["x_train"], digits["y_train"], config, jax.random.key(0),
                                     sys.argv[4] + ".chain", progress=False, max_chunks=chunks)
chain(1)  # compiles; the measurement resumes the chain with the compiled program
watcher = threading.Thread(target=watch)
watcher.start()
before, t0 = ticks(watcher.native_id), time.perf_counter()
chain(None)
wall = time.perf_counter() - t0
cpu = (ticks(watcher.native_id) - before) / os.sysconf("SC_CLK_TCK")
done.set()
watcher.join()
json.dump({"cpu_per_wall": cpu / wall, "samples": len(counts), "share_two_or_more": sum(c >= 2 for c in counts) / len(counts),
           "lap_workers": threads.usable_cpus(), "omp": os.environ.get("OMP_NUM_THREADS")}, open(sys.argv[4], "w"))
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
    assert one["samples"] > 50, one
    assert one["cpu_per_wall"] < 1.3, one  # about one core (generous: Python's own threads add a little)
    assert one["share_two_or_more"] < 0.15, one  # at most one thread computes, but for hand-overs
    assert one["lap_workers"] == 1 and one["omp"] == "1"
    if len(threads.affinity()) >= 2:
        # The control: without start(), the same job computes on several threads at once.
        unlimited = run_job(tmp_path, 0)
        assert unlimited["share_two_or_more"] > 0.3, unlimited


def test_limit_refuses_started_backends_and_bad_counts():
    import jax.numpy as jnp

    jnp.zeros(1)  # this test process has started JAX
    with pytest.raises(RuntimeError, match="before JAX starts its backends"):
        threads.limit(1)
    with pytest.raises(ValueError, match="threads must be an integer >= 1"):
        threads.limit(0)
