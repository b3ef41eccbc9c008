"""Expected wall time of the workflow's jobs, from measured throughput figures (``benchmarks/figures/*.json``).

Each job's work is counted in example-parameter passes (EP: examples x parameters, the unit in
which an MLP's forward and backward passes scale; for a convolutional network, "parameters" are
its multiply-adds per example, ``shapes.work_per_example``: a convolution's weights count once
per output position) of one kind, and divided by the rate of that
kind measured by ``benchmarks/gpu_check.py`` on a device (paper size on a GPU, ``--reduced``
on a CPU):

=================  ========================================================  =============================
kind               work                                                       rate from the figures
=================  ========================================================  =============================
hmc_<precision>    full-batch leapfrog gradients x N x P                      ms per leapfrog step
train              model-epochs x N x P (SGD, Experiments A and B)            model-epochs per second
ensemble           members x epochs x N x P                                   seconds per epoch
vi                 epochs x N x P                                             seconds per epoch
forward            networks x images x P (losses, predictives, accuracy)      example-parameters per second
alignment          networks x matching images x P (activation matching)       aligned samples per second
=================  ========================================================  =============================

plus a per-rule overhead (start-up, data, compilation), measured on the smoke preset's jobs.
Work scales linearly from the measured size to the configured one: the projection is as good as
that assumption (small networks run below a device's throughput, so small presets are
overestimated on GPUs). The work model of each rule is approximate (it counts the passes that
dominate) and says nothing about memory.

A cyclical SG-MCMC chain (rule ``sgmcmc_chain``) is priced by ``sgmcmc_seconds`` from rates that
``benchmarks/sgmcmc.py`` measured on a CPU (``SGMCMC_CPU``), not from the figures' kinds: its steps are
minibatch gradients plus one Gaussian draw per parameter, a cost the figures do not measure.

The library reads no config files: ``scripts/cost.py`` loads the config, asks Snakemake for the
DAG and prints the table.
"""

from __future__ import annotations

import heapq
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from compactbnn.config.datasets import KNOWN_DATASETS, NUM_EXAMPLES
from compactbnn.config.fields import cycle_layout
from compactbnn.config.keys import sgmcmc_kwargs
from compactbnn.config.shapes import model_params, num_trained_levels, perm_widths, work_per_example

KINDS = ("hmc_float32", "hmc_tf32", "hmc_bfloat16", "train", "ensemble", "vi", "forward", "alignment")


@dataclass
class Sizes:
    perm_widths: list[int]  # units of each permutation group (an MLP's hidden widths)
    num_params: int
    work: int  # multiply-adds per example (an MLP: num_params), what P stands for below
    num_train: int
    num_test: int


def sizes_of(config: dict) -> Sizes:
    """Permutation widths, parameters, work per example, training and test images of a (merged) workflow config."""
    dataset = config["data"]["dataset"]
    if dataset not in KNOWN_DATASETS:
        raise ValueError(f"data.dataset must be one of {sorted(KNOWN_DATASETS)}, got {dataset!r}")
    train, test = NUM_EXAMPLES[dataset]
    train = min(train, config["data"].get("train_size") or train)
    test = min(test, config["data"].get("test_size") or test)
    return Sizes(perm_widths(config), model_params(config), work_per_example(config), train, test)


def job_work(rule: str, config: dict) -> dict[str, float]:
    """Work of one job of ``rule`` by kind, in example-parameter passes (empty: overhead only)."""
    s = sizes_of(config)
    P, N, T = s.work, s.num_train, s.num_test
    post = config["posterior"]
    if rule == "train_not_run":
        cfg = config["not_experiment"]
        levels = num_trained_levels(cfg)  # each permutation group has this many (the config check makes sure)
        models = 2 * levels if cfg.get("pairs", "independent") == "independent" else levels + 1
        return {"train": models * cfg["training"]["epochs"] * N * P}
    if rule == "analyse_not_run":
        cfg = config["not_experiment"]
        levels = num_trained_levels(cfg)  # each permutation group has this many (the config check makes sure)
        split = N if cfg.get("split", "train") == "train" else T
        match = min(N, cfg.get("match_size") or N)
        # two alignments per level (trained pair, pair at init); three curves, each before and after
        return {"alignment": 2 * levels * match * P, "forward": 6 * levels * cfg["lambdas"] * split * P}
    if rule == "train_interpolation":
        return {"train": 2 * config["interpolation"]["training"]["epochs"] * N * P}
    if rule == "analyse_interpolation":
        cfg = config["interpolation"]
        snapshots = cfg["training"]["epochs"] + 1
        match = min(N, cfg.get("match_size") or N)
        return {"alignment": snapshots * match * P, "forward": 2 * snapshots * cfg["lambdas"] * (N + T) * P}
    if rule == "hmc_chain":
        cfg = post["hmc"]
        n = min(N, cfg.get("train_size") or N)
        steps = (cfg["iterations"] + cfg.get("warmup", 0)) * cfg["num_steps"]
        precision = cfg.get("gradient_precision", "float32")
        return {f"hmc_{precision}": steps * n * P, "forward": cfg["num_kept"] * T * P}
    if rule == "train_ensemble":
        cfg = post["ensemble"]
        return {"ensemble": cfg["members"] * cfg["training"]["epochs"] * N * P}
    if rule == "fit_vi":
        return {"vi": post["vi"]["epochs"] * N * P}
    if rule == "compact":
        cfg, hmc = post["compact"], post["hmc"]
        match = min(N, cfg.get("match_size") or N)
        networks = hmc["chains"] * hmc["num_kept"] + post["ensemble"]["members"] + max(1, cfg.get("vi_activation_draws", 0))
        rounds = cfg.get("max_rounds", 1) if cfg.get("reference") == "mean" else 1
        work = {"forward": 5 * cfg["q_samples"] * T * P}
        if cfg.get("matching", "activation") == "activation":
            work["alignment"] = rounds * networks * match * P
        return work
    if rule == "compact_sgmcmc":
        cfg = post["compact"]
        w = sgmcmc_work(config)
        match = min(N, cfg.get("match_size") or N)
        cycles = w["kept"] // w["samples_per_cycle"]
        # every sample aligned once to HMC's reference; then NoT between two samples, for about two pairs a cycle
        # (consecutive cycles, within a cycle), before and after alignment
        networks = w["chains"] * (w["kept"] + 2 * 2 * 2 * cycles)
        return {"alignment": networks * match * P} if cfg.get("matching", "activation") == "activation" else {}
    if rule == "posterior_metrics":
        hmc, sg = post["hmc"], sgmcmc_work(config)
        networks = hmc["chains"] * hmc["num_kept"] + post["ensemble"]["members"] + 5 * post["compact"]["q_samples"]
        networks += sg["chains"] * sg["kept"] + 2 * post["compact"]["q_samples"]  # SG-MCMC's samples, q_d and q_r
        return {"forward": networks * T * P}
    if rule == "hmc_running_predictive":
        return {"forward": post["hmc"]["chains"] * post["hmc"]["num_kept"] * T * P}
    return {}


def job_counts(config: dict) -> dict[str, int]:
    """Jobs of each rule of the workflow for a config, as its DAG has them (for where Snakemake is absent).

    ``scripts/cost.py`` reads the DAG from Snakemake itself; this mirrors it for the GPU check.
    """
    runs, chains = config["not_experiment"]["runs"], config["posterior"]["hmc"]["chains"]
    counts = {"train_not_run": runs, "analyse_not_run": runs, "hmc_chain": chains,
              "sgmcmc_chain": config["posterior"]["sgmcmc"]["chains"]}
    for rule in ("collect_not_experiment", "train_interpolation", "analyse_interpolation", "train_ensemble", "fit_vi",
                 "compact", "compact_sgmcmc", "posterior_metrics", "hmc_running_predictive", "weight_space", "figure1", "figure2",
                 "figure3", "figure4", "figure_s1", "figure_s2", "table1", "claims", "claims_html"):
        counts[rule] = 1
    if config["data"]["dataset"] == "mnist":
        counts["fetch_mnist"] = 1
    return counts


def rates(figures: dict) -> dict[str, float]:
    """Example-parameter passes per second of each kind, from a ``gpu_check`` JSON."""
    size = figures["size"]
    P, N = size["num_params"], size["num_train"]
    out = {}
    for precision, hmc in figures["hmc"].items():
        out[f"hmc_{precision}"] = N * P / (hmc["ms_per_leapfrog"] / 1e3)
    out["train"] = figures["experiment_a"]["model_epochs_per_s"] * N * P
    out["ensemble"] = figures["ensemble"]["members"] * N * P / figures["ensemble"]["s_per_epoch"]
    out["vi"] = N * P / figures["vi"]["s_per_epoch"]
    out["forward"] = figures["evaluation"]["example_params_per_s"]
    out["alignment"] = figures["alignment"]["samples_per_s"] * figures["alignment"]["match_size"] * P
    return out


def job_seconds(rule: str, config: dict, figures: dict, overheads: dict | None = None) -> float:
    """Expected seconds of one job: its work at the figures' rates plus the rule's measured overhead."""
    rate = rates(figures)
    overheads = overheads if overheads is not None else figures.get("overhead_s", {})
    seconds = overheads.get(rule, overheads.get("default", 0.0))
    if rule == "sgmcmc_chain":  # from benchmarks/sgmcmc.py's rates (SGMCMC_CPU), kept samples evaluated at the forward rate
        seconds += sgmcmc_seconds(config, rate["forward"])["chain_s"]
    for kind, work in job_work(rule, config).items():
        if kind not in rate:
            raise ValueError(f"the figures have no rate for {kind!r} (rule {rule})")
        seconds += work / rate[kind]
    return seconds


@dataclass(order=True)
class Job:
    """One DAG node: its id, rule, label (rule and wildcards), and what it waits for."""

    id: int
    rule: str = field(compare=False)
    label: str = field(compare=False)
    needs: set = field(default_factory=set, compare=False)
    seconds: float = field(default=0.0, compare=False)
    threads: int = field(default=1, compare=False)
    gpu: int = field(default=0, compare=False)


def parse_dag(dot: str) -> dict[int, Job]:
    """Jobs and dependencies from ``snakemake --dag`` (Graphviz dot)."""
    jobs, edges = {}, []
    for line in dot.splitlines():
        line = line.strip()
        if "->" in line:
            a, b = line.rstrip(";").split("->")
            edges.append((int(a), int(b)))
        elif "[label" in line and line[0].isdigit():
            node = int(line.split("[", 1)[0])
            label = line.split('label = "', 1)[1].split('"', 1)[0].replace("\\n", " ")
            jobs[node] = Job(node, label.split()[0], label)
    for a, b in edges:
        jobs[b].needs.add(a)
    return jobs


def makespan(jobs: dict[int, Job], cores: int, gpus: int | None = None) -> float:
    """Wall time of running the DAG with ``cores`` CPU threads (and ``gpus`` GPU slots for jobs with gpu > 0).

    List scheduling in Snakemake's spirit: whenever cores are free, start the ready job that
    came first in the DAG listing; a job takes ``threads`` cores (at most ``cores``).
    """
    if cores < 1:
        raise ValueError(f"cores must be >= 1, got {cores}")
    waiting = {j.id: set(j.needs) for j in jobs.values()}
    ready = [j.id for j in jobs.values() if not j.needs]
    heapq.heapify(ready)
    running, now, free, free_gpus = [], 0.0, cores, gpus
    finished = 0
    while finished < len(jobs):
        started = True
        while started and ready:
            started = False
            for node in sorted(ready):
                job = jobs[node]
                threads = min(job.threads, cores)
                if threads <= free and (free_gpus is None or job.gpu <= free_gpus):
                    ready.remove(node)
                    free -= threads
                    if free_gpus is not None:
                        free_gpus -= job.gpu
                    heapq.heappush(running, (now + job.seconds, node, threads))
                    started = True
                    break
        if not running:
            raise ValueError("the DAG has a cycle or a job needs more than the resources given")
        now, node, threads = heapq.heappop(running)
        free += threads
        if free_gpus is not None:
            free_gpus += jobs[node].gpu
        finished += 1
        for other, needs in waiting.items():
            if node in needs:
                needs.discard(node)
                if not needs:
                    ready.append(other)
    return now


def load_figures(path: str | Path) -> dict:
    with open(path) as handle:
        figures = json.load(handle)
    for key in ("size", "hmc", "experiment_a", "ensemble", "vi", "evaluation", "alignment"):
        if key not in figures:
            raise ValueError(f"{path}: not a gpu_check figures file (no {key!r})")
    return figures


def format_seconds(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "n/a"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


# Cyclical SG-MCMC on a CPU, from ``benchmarks/sgmcmc.py --paper`` on this repository's build machine (2 cores,
# 2026-12-02, while other jobs loaded it: load average 4-11; wall-clock medians): 784-512-10 on 60,000 MNIST
# images, batch 64, one chain. A step of the exploration stage (one minibatch gradient and the update) took
# ``ms_per_step`` (sgld 1.92 ms at 07:33; sghmc 3.08 ms at 07:16), a step of the sampling stage
# ``ms_noise_per_step`` more (sgld 9.91 ms, sghmc 10.33 ms in all: BlackJAX draws one Gaussian per parameter).
# ``shuffle_ms_per_epoch``: the epoch's permutation of 60,000 indices (scales with N). Check against a real run
# (sgmcmc.run_chain, one 50-epoch cycle of the default sgld, same machine, 07:29): 144 s measured, 135 s predicted.
SGMCMC_CPU = {
    "batch_size": 64, "work": 407_050, "num_params": 407_050, "num_train": 60_000,
    "ms_per_step": {"sgld": 1.92, "sghmc": 3.08},
    "ms_noise_per_step": {"sgld": 7.99, "sghmc": 7.25},
    "shuffle_ms_per_epoch": 45.0,
    "compile_s": 3.0,
}


def sgmcmc_work(config: dict) -> dict:
    """One SG-MCMC chain of a (merged, checked) config: its steps, noisy steps, epochs, kept samples and sizes."""
    s = sizes_of(config)
    section = config["posterior"]["sgmcmc"]
    n = min(s.num_train, section.get("train_size") or s.num_train)
    values = sgmcmc_kwargs(section, config["posterior"]["prior_sd"], config["matmul_precision"])
    layout = cycle_layout(values, n)
    return {"steps": layout.total_steps, "noisy_steps": layout.cycles * layout.sampling_steps,
            "epochs": section["epochs"], "kept": layout.cycles * layout.samples_per_cycle, "num_train": n,
            "num_test": s.num_test, "batch_size": section["batch_size"], "work": s.work, "num_params": s.num_params,
            "sampler": section["sampler"], "chains": section["chains"], "samples_per_cycle": section["samples_per_cycle"]}


def sgmcmc_seconds(config: dict, forward_rate: float, measured: dict = SGMCMC_CPU) -> dict:
    """Expected seconds of one SG-MCMC chain and of all chains run one after the other, from ``measured`` rates.

    Steps scale linearly in batch x work per example from the measured size, the noise in parameters,
    the shuffle in N; each kept sample is evaluated on the training and test images at ``forward_rate``
    (example-parameter passes per second: ``rates(figures)["forward"]``), plus the compilation.
    """
    w = sgmcmc_work(config)
    step = measured["ms_per_step"][w["sampler"]] / 1e3 * (w["batch_size"] * w["work"]) / (measured["batch_size"] * measured["work"])
    noise = measured["ms_noise_per_step"][w["sampler"]] / 1e3 * w["num_params"] / measured["num_params"]
    parts = {
        "steps": w["steps"] * step,
        "noise": w["noisy_steps"] * noise,
        "shuffles": w["epochs"] * measured["shuffle_ms_per_epoch"] / 1e3 * w["num_train"] / measured["num_train"],
        "evaluation": w["kept"] * (w["num_train"] + w["num_test"]) * w["work"] / forward_rate,
        "compile": measured["compile_s"],
    }
    chain = sum(parts.values())
    return {"chain_s": chain, "all_chains_s": w["chains"] * chain, "parts_s": parts, **w}
