# The compact representation: HMC samples, ensemble members and VI's q aligned to one shared
# reference (q_r) next to the unaligned q_d; SG-MCMC's samples aligned to the same reference; then
# Table 1's metrics and the pruning curves.


rule compact:
    """q_d and q_r of HMC and the ensemble, VI's q in the same basis, R-hat of the weights before and after alignment."""
    input:
        data_inputs(),
        hmc=expand(f"{R}/hmc/chain{{chain}}/samples.npz", chain=hmc_chains()),
        ensemble=f"{R}/ensemble/members.npz",
        vi=f"{R}/vi/posterior.npz",
    output:
        **sigma_reference_file(),
        hmc_direct=f"{R}/compact/hmc_q_d.npz",
        hmc_rebasin=f"{R}/compact/hmc_q_r.npz",
        ensemble_direct=f"{R}/compact/ensemble_q_d.npz",
        ensemble_rebasin=f"{R}/compact/ensemble_q_r.npz",
        vi=f"{R}/compact/vi_q.npz",
        rhat=f"{R}/compact/rhat.json",
        # Figure 3 left's HMC q_r under sigma_reference, when it differs from reference
    log:
        f"{R}/logs/compact.log",
    benchmark:
        f"{R}/benchmarks/compact.tsv"
    conda:
        CONDA_ENV
    # its LAPs (one per sample and layer) are solved in a pool of this many threads, beside XLA's
    # matmuls; it runs after every sampler, when cores are free. The other jobs run side by side,
    # one thread each (chains, runs): more jobs at once beat more threads per job.
    threads: 2
    resources:
        gpu=1,
        mem_mb=memory_mb(copies_of_samples=4, chains=len(hmc_chains())),
        runtime=120,
    params:
        data=config["data"],
        model=config["model"],
        compact=pick(
            config["posterior"]["compact"],
            "reference",
            "matching",
            "match_size",
            "max_rounds",
            "ensemble_alignment",
            "vi_activation_draws",
            "seed",
        )
        | sigma_reference_params(),
        matmul_precision=config["matmul_precision"],
    script:
        "../scripts/compact.py"


rule compact_sgmcmc:
    """SG-MCMC's q_d and q_r (its samples aligned to HMC's reference as HMC's are), R-hat of the weights before and after, NoT between its cycles."""
    input:
        data_inputs(),
        sgmcmc=expand(f"{R}/sgmcmc/chain{{chain}}/samples.npz", chain=sgmcmc_chains()),
        # HMC's q_r holds the reference HMC's samples were aligned to
        hmc_q_r=rules.compact.output.hmc_rebasin,
    output:
        direct=f"{R}/compact/sgmcmc_q_d.npz",
        rebasin=f"{R}/compact/sgmcmc_q_r.npz",
        rhat=f"{R}/compact/sgmcmc_rhat.json",
        modes=report(
            f"{R}/data/sgmcmc_modes.csv",
            caption="../report/data_sgmcmc_modes.rst",
            category="Data",
        ),
    log:
        f"{R}/logs/compact_sgmcmc.log",
    benchmark:
        f"{R}/benchmarks/compact_sgmcmc.tsv"
    conda:
        CONDA_ENV
    threads: 2
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: int(
            (4000 + 4 * sgmcmc_samples_mb()) * attempt
        ),
        runtime=60,
    params:
        data=config["data"],
        model=config["model"],
        compact=pick(config["posterior"]["compact"], "matching", "match_size", "seed"),
        matmul_precision=config["matmul_precision"],
    script:
        "../scripts/compact_sgmcmc.py"


rule posterior_metrics:
    """Table 1 (agreement, total variation, accuracies; NLL and ECE too), every sigma of Figure 3 (and histograms for the claims), the pruning curves."""
    input:
        data_inputs(),
        **sigma_reference_file(),
        hmc_q_d=rules.compact.output.hmc_direct,
        hmc_q_r=rules.compact.output.hmc_rebasin,
        ensemble_q_d=rules.compact.output.ensemble_direct,
        ensemble_q_r=rules.compact.output.ensemble_rebasin,
        vi_q=rules.compact.output.vi,
        sgmcmc_q_d=rules.compact_sgmcmc.output.direct,
        sgmcmc_q_r=rules.compact_sgmcmc.output.rebasin,
        hmc=expand(f"{R}/hmc/chain{{chain}}/samples.npz", chain=hmc_chains()),
        ensemble=f"{R}/ensemble/members.npz",
        sgmcmc=expand(f"{R}/sgmcmc/chain{{chain}}/samples.npz", chain=sgmcmc_chains()),
    output:
        table=report(
            f"{R}/data/posterior_metrics.csv",
            caption="../report/data_posterior_metrics.rst",
            category="Data",
        ),
        pruning=report(
            f"{R}/data/pruning.csv",
            caption="../report/data_pruning.rst",
            category="Data",
        ),
        sigma=report(
            f"{R}/data/sigma.csv", caption="../report/data_sigma.rst", category="Data"
        ),
        sigma_values=report(
            f"{R}/data/sigma_values.csv.gz",
            caption="../report/data_sigma_values.rst",
            category="Data",
        ),
    log:
        f"{R}/logs/posterior_metrics.log",
    benchmark:
        f"{R}/benchmarks/posterior_metrics.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        gpu=1,
        mem_mb=memory_mb(copies_of_samples=2, chains=len(hmc_chains())),
        runtime=120,
    params:
        data=config["data"],
        model=config["model"],
        compact=pick(
            config["posterior"]["compact"],
            "seed",
            "q_samples",
            "retained_percents",
        )
        | low_rank_draws_params(),
        # sigma.csv's bins (for the claims) are fractions of the prior sd; the figure's bins are its own
        prior_sd=config["posterior"]["prior_sd"],
        matmul_precision=config["matmul_precision"],
    script:
        "../scripts/posterior_metrics.py"


rule weight_space:
    """Figure 4's data: per-weight mu and sigma of HMC, the ensemble, VI and SG-MCMC before and after rebasin, and their correlations."""
    input:
        hmc_q_d=rules.compact.output.hmc_direct,
        hmc_q_r=rules.compact.output.hmc_rebasin,
        ensemble_q_d=rules.compact.output.ensemble_direct,
        ensemble_q_r=rules.compact.output.ensemble_rebasin,
        vi_q=rules.compact.output.vi,
        vi=f"{R}/vi/posterior.npz",
        sgmcmc_q_d=rules.compact_sgmcmc.output.direct,
        sgmcmc_q_r=rules.compact_sgmcmc.output.rebasin,
    output:
        values=report(
            f"{R}/data/weight_space_values.csv.gz",
            caption="../report/data_weight_space_values.rst",
            category="Data",
        ),
        correlations=report(
            f"{R}/data/weight_space.csv",
            caption="../report/data_weight_space.rst",
            category="Data",
        ),
    log:
        f"{R}/logs/weight_space.log",
    benchmark:
        f"{R}/benchmarks/weight_space.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=30,
    params:
        data=config["data"],
        model=config["model"],
    script:
        "../scripts/weight_space.py"
