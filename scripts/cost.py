"""Expected wall time of every job of a configuration, and of the whole DAG, before running it.

    .venv/bin/python scripts/cost.py --configfile presets/quick.yaml [--cores 2] [--device auto|cpu|gpu]

Takes the config as Snakemake does (config.yaml, then each --configfile over it), asks Snakemake
for the DAG of all jobs (``--forceall --dag``: the cost from scratch, whatever is cached), and
prices each job with ``compactbnn.config.cost`` from the throughput figures of the device:
``benchmarks/figures/cpu.json`` (measured on this repository's build machine) or
``benchmarks/figures/gpu.json`` (``benchmarks/gpu_check.py`` on a GPU; until it exists, the GPU
cost is "not measured"). The DAG's wall time is a list schedule of the jobs with ``--cores``
CPU threads (and one GPU job at a time on a GPU, as ``--resources gpu=1``).

    .venv/bin/python scripts/cost.py calibrate --configfile presets/smoke.yaml --results results/smoke

stores each rule's overhead (its measured job time minus its modelled work) from a finished
run's ``benchmarks/`` into the CPU figures.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from compactbnn.config import checks, cost  # noqa: E402

FIGURES = {"cpu": REPO / "benchmarks" / "figures" / "cpu.json", "gpu": REPO / "benchmarks" / "figures" / "gpu.json"}


def merged_config(configfiles: list[str]) -> dict:
    """config.yaml with each configfile merged over it (as Snakemake's --configfile), checked, with the defaults filled in."""
    config = checks.read_config_file(REPO / "config.yaml")
    for path in configfiles:
        checks.merge(config, checks.read_config_file(path))
    return checks.check_config(config)


def snakemake_dag(configfiles: list[str]) -> tuple[dict, dict]:
    """The DAG of all jobs (``--forceall``) and each rule's threads and GPU need, from Snakemake."""
    base = [sys.executable, "-m", "snakemake", "--forceall", "--cores", "1"] + [a for f in configfiles for a in ("--configfile", f)]
    dag = subprocess.run(base + ["--dag"], capture_output=True, text=True, cwd=REPO)
    if dag.returncode != 0:
        raise SystemExit(f"snakemake --dag failed:\n{dag.stderr[-2000:]}")
    dry = subprocess.run(base + ["--dry-run"], capture_output=True, text=True, cwd=REPO)
    if dry.returncode != 0:
        raise SystemExit(f"snakemake --dry-run failed:\n{dry.stderr[-2000:]}")
    needs, rule = {}, None
    for line in (dry.stdout + dry.stderr).splitlines():
        words = line.split()
        if len(words) == 2 and words[0] in ("rule", "localrule") and words[1].endswith(":"):
            rule = words[1][:-1]
            needs.setdefault(rule, {"threads": 1, "gpu": 0})
        elif rule and line.strip().startswith("threads:"):
            needs[rule]["threads"] = int(line.split(":")[1])
        elif rule and line.strip().startswith("resources:") and "gpu=" in line:
            needs[rule]["gpu"] = int(line.split("gpu=")[1].split(",")[0])
    return cost.parse_dag(dag.stdout), needs


def device_at_hand() -> str:
    import jax

    return "cpu" if jax.default_backend() == "cpu" else "gpu"


def estimate(args) -> int:
    config = merged_config(args.configfile)
    device = device_at_hand() if args.device == "auto" else args.device
    path = Path(args.figures) if args.figures else FIGURES[device]
    print(f"config {config['name']} ({', '.join(args.configfile) or 'config.yaml'}); device {device}; --cores {args.cores}")
    if not path.exists():
        print(f"{device}: not measured (no {path.relative_to(REPO) if path.is_relative_to(REPO) else path}: "
              "run benchmarks/gpu_check.py there, docs/gpu.md)")
        return 1
    jobs, needs = snakemake_dag(args.configfile)
    figures = cost.load_figures(path)
    overheads = figures.get("overhead_s") or cost.load_figures(FIGURES["cpu"]).get("overhead_s", {})
    print(f"figures: {path.relative_to(REPO) if path.is_relative_to(REPO) else path}, {figures['device']}, {figures['date']}, "
          f"measured at {figures['size']['layer_sizes']} on {figures['size']['num_train']} images; work scaled linearly")
    if figures.get("note"):
        print(f"note: {figures['note']}")
    print(f"{len(jobs) - 1} jobs")
    by_rule = {}
    for job in jobs.values():
        job.seconds = cost.job_seconds(job.rule, config, figures, overheads) if job.rule != "all" else 0.0
        job.threads = needs.get(job.rule, {}).get("threads", 1)
        job.gpu = needs.get(job.rule, {}).get("gpu", 0)
        count, seconds = by_rule.get(job.rule, (0, 0.0))
        by_rule[job.rule] = (count + 1, job.seconds)
    print(f"{'rule':28s} {'jobs':>5s} {'each':>10s} {'all':>10s}")
    for rule, (count, seconds) in sorted(by_rule.items(), key=lambda item: -item[1][0] * item[1][1]):
        if rule != "all":
            print(f"{rule:28s} {count:5d} {cost.format_seconds(seconds):>10s} {cost.format_seconds(count * seconds):>10s}")
    total = sum(job.seconds for job in jobs.values())
    wall = cost.makespan(jobs, args.cores, gpus=1 if device == "gpu" else None)
    print(f"sum of all jobs {cost.format_seconds(total)}; the DAG with --cores {args.cores}: {cost.format_seconds(wall)}")
    print(sgmcmc_line(config, figures, device))
    return 0


def sgmcmc_line(config: dict, figures: dict, device: str) -> str:
    """What the sgmcmc_chain jobs above are: posterior.sgmcmc's chains, priced from benchmarks/sgmcmc.py's CPU rates."""
    if device != "cpu":
        return (f"posterior.sgmcmc: not measured on {device} (benchmarks/sgmcmc.py there); the sgmcmc_chain jobs above "
                "are priced at the CPU's rates")
    sg = cost.sgmcmc_seconds(config, cost.rates(figures)["forward"])
    return (f"posterior.sgmcmc (the sgmcmc_chain jobs): {sg['chains']} {sg['sampler']} chain(s) of {sg['epochs']} epochs "
            f"({sg['steps']:,} steps each): {cost.format_seconds(sg['chain_s'])} per chain, "
            f"{cost.format_seconds(sg['all_chains_s'])} one after the other (rates: config.cost.SGMCMC_CPU)")


def calibrate(args) -> int:
    config = merged_config(args.configfile)
    path = Path(args.figures) if args.figures else FIGURES["cpu"]
    figures = cost.load_figures(path)
    no_overheads = {}
    measured = {}
    for tsv in sorted(Path(args.results, "benchmarks").rglob("*.tsv")):
        rule = tsv.parent.name if tsv.parent.name != "benchmarks" else tsv.stem
        with open(tsv) as handle:
            row = list(csv.DictReader(handle, delimiter="\t"))[-1]
        measured.setdefault(rule, []).append(float(row["s"]))
    overheads = {rule: round(max(0.0, sum(times) / len(times) - cost.job_seconds(rule, config, figures, no_overheads)), 2)
                 for rule, times in measured.items()}
    overheads["default"] = round(sorted(overheads.values())[len(overheads) // 2], 2)  # rules without a benchmark: the median
    figures["overhead_s"] = overheads
    figures["overhead_from"] = {"results": str(args.results), "configfile": args.configfile,
                                "note": args.note or "job wall times minus modelled work"}
    with open(path, "w") as handle:
        json.dump(figures, handle, indent=2)
    print(json.dumps(overheads, indent=2))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", default="estimate", choices=("estimate", "calibrate"))
    parser.add_argument("--configfile", action="append", default=[], help="as snakemake's (repeatable)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "gpu"))
    parser.add_argument("--figures", help="a gpu_check JSON instead of benchmarks/figures/<device>.json")
    parser.add_argument("--results", help="calibrate: a finished run's results/<name>")
    parser.add_argument("--note", help="calibrate: what to record about the measurement (machine load, ...)")
    args = parser.parse_args(argv)
    if args.command == "calibrate" and not args.results:
        parser.error("calibrate needs --results")
    try:
        return calibrate(args) if args.command == "calibrate" else estimate(args)
    except checks.ConfigError as error:  # a refused config: the key in one line, as Snakemake would say it
        print(error, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
