# Rebasin, distances and loss barriers of Experiments A and B, as tidy CSV tables.


rule analyse_not_run:
    """Experiment A, one run: NoT(P') by rebasin, squared distance and barrier for the init, trained and control pairs."""
    input:
        data_inputs(),
        networks=f"{R}/not_experiment/run{{run}}/networks.npz",
    output:
        f"{R}/not_experiment/run{{run}}/analysis.csv",
    log:
        f"{R}/logs/analyse_not_run/run{{run}}.log",
    benchmark:
        f"{R}/benchmarks/analyse_not_run/run{{run}}.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        runtime=120,
    params:
        data=config["data"],
        model=config["model"],
        experiment=pick(
            config["not_experiment"], "matching", "match_size", "lambdas", "split"
        ),
        matmul_precision=config["matmul_precision"],
    script:
        "../scripts/analyse_not_run.py"


# concatenating CSVs takes a second: run where Snakemake runs, not through a cluster's queue
localrules:
    collect_not_experiment,


rule collect_not_experiment:
    """All runs of Experiment A in one table: run, not_init, curve, not_measured, distance, barrier."""
    input:
        expand(f"{R}/not_experiment/run{{run}}/analysis.csv", run=not_runs()),
    output:
        report(
            f"{R}/data/not_experiment.csv",
            caption="../report/data_not_experiment.rst",
            category="Data",
        ),
    log:
        f"{R}/logs/collect_not_experiment.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/concat_csv.py"


rule analyse_interpolation:
    """Experiment B: loss, accuracy and NoT to W0 over (epoch, lambda), before and after rebasin."""
    input:
        data_inputs(),
        snapshots=f"{R}/interpolation/snapshots.npz",
    output:
        report(
            f"{R}/data/interpolation.csv",
            caption="../report/data_interpolation.rst",
            category="Data",
        ),
    log:
        f"{R}/logs/analyse_interpolation.log",
    benchmark:
        f"{R}/benchmarks/analyse_interpolation.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        runtime=120,
    params:
        data=config["data"],
        model=config["model"],
        experiment=pick(config["interpolation"], "lambdas", "matching", "match_size"),
        matmul_precision=config["matmul_precision"],
    script:
        "../scripts/analyse_interpolation.py"
