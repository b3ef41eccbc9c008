# Training for Experiments A and B: every group of networks is one job, trained together
# with jax.vmap (one epoch = one lax.scan), so a GPU takes a whole run at once.


rule train_not_run:
    """Experiment A, one run: W_init and its copies permuted to every NoT level, trained with different minibatch orders."""
    input:
        data_inputs(),
    output:
        f"{R}/not_experiment/run{{run}}/networks.npz",
    log:
        f"{R}/logs/train_not_run/run{{run}}.log",
    benchmark:
        f"{R}/benchmarks/train_not_run/run{{run}}.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        runtime=240,
    params:
        data=config["data"],
        model=config["model"],
        experiment=pick(
            config["not_experiment"],
            "seed",
            "levels",
            "level_indices",
            "pairs",
            "training",
        ),
        matmul_precision=config["matmul_precision"],
    script:
        "../scripts/train_not_run.py"


rule train_interpolation:
    """Experiment B: two independently initialised networks, a snapshot after every epoch."""
    input:
        data_inputs(),
    output:
        f"{R}/interpolation/snapshots.npz",
    log:
        f"{R}/logs/train_interpolation.log",
    benchmark:
        f"{R}/benchmarks/train_interpolation.tsv"
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
        experiment=pick(config["interpolation"], "seed", "training"),
        matmul_precision=config["matmul_precision"],
    script:
        "../scripts/train_interpolation.py"
