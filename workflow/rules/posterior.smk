# Experiment C's posteriors: HMC chains (one job each, resumable), the deep ensemble and mean-field VI; beyond the
# paper, cyclical SG-MCMC chains (one job each, resumable).


rule hmc_chain:
    """One NumPyro HMC chain, sampled in checkpointed chunks: a killed job resumes where it stopped."""
    input:
        data_inputs(),
    output:
        # protected (read-only): a changed sampling config stops Snakemake before any job instead of
        # deleting a finished chain (GPU hours at the paper's scale); delete the samples to resample
        samples=protected(f"{R}/hmc/chain{{chain}}/samples.npz"),
        diagnostics=f"{R}/hmc/chain{{chain}}/diagnostics.json",
        # the scalar traces as ArviZ InferenceData (netCDF): az.summary, az.plot_trace
        trace=f"{R}/hmc/chain{{chain}}/trace.nc",
    log:
        f"{R}/logs/hmc_chain/chain{{chain}}.log",
    benchmark:
        f"{R}/benchmarks/hmc_chain/chain{{chain}}.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        gpu=1,
        mem_mb=memory_mb(copies_of_samples=2),
        runtime=600,
    params:
        data=config["data"],
        model=config["model"],
        hmc=HMC_SAMPLING,
        prior_sd=config["posterior"]["prior_sd"],
        matmul_precision=config["matmul_precision"],
        checkpoint=hmc_checkpoint,
        sampling_config=HMC_SAMPLING_CONFIG,
    script:
        "../scripts/hmc_chain.py"


rule sgmcmc_chain:
    """One cyclical SG-MCMC chain (BlackJAX; beyond the paper), checkpointed after every cycle: a killed job resumes where it stopped."""
    input:
        data_inputs(),
    output:
        samples=f"{R}/sgmcmc/chain{{chain}}/samples.npz",
        diagnostics=f"{R}/sgmcmc/chain{{chain}}/diagnostics.json",
        # the scalar traces as ArviZ InferenceData (netCDF): az.summary, az.plot_trace
        trace=f"{R}/sgmcmc/chain{{chain}}/trace.nc",
    log:
        f"{R}/logs/sgmcmc_chain/chain{{chain}}.log",
    benchmark:
        f"{R}/benchmarks/sgmcmc_chain/chain{{chain}}.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: int(
            (4000 + 2 * sgmcmc_samples_mb()) * attempt
        ),
        runtime=600,
    params:
        data=config["data"],
        model=config["model"],
        sgmcmc=SGMCMC_SAMPLING,
        prior_sd=config["posterior"]["prior_sd"],
        matmul_precision=config["matmul_precision"],
        checkpoint=sgmcmc_checkpoint,
        sampling_config=SGMCMC_SAMPLING_CONFIG,
    script:
        "../scripts/sgmcmc_chain.py"


rule train_ensemble:
    """The deep ensemble: members from independent initialisations, MAP with the Gaussian prior, trained together."""
    input:
        data_inputs(),
    output:
        f"{R}/ensemble/members.npz",
    log:
        f"{R}/logs/train_ensemble.log",
    benchmark:
        f"{R}/benchmarks/train_ensemble.tsv"
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
        ensemble=config["posterior"]["ensemble"],
        prior_sd=config["posterior"]["prior_sd"],
        matmul_precision=config["matmul_precision"],
    script:
        "../scripts/train_ensemble.py"


rule fit_vi:
    """Mean-field Gaussian VI with the N(0, prior_sd^2) prior."""
    input:
        data_inputs(),
    output:
        f"{R}/vi/posterior.npz",
    log:
        f"{R}/logs/fit_vi.log",
    benchmark:
        f"{R}/benchmarks/fit_vi.tsv"
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
        vi=config["posterior"]["vi"],
        prior_sd=config["posterior"]["prior_sd"],
        matmul_precision=config["matmul_precision"],
    script:
        "../scripts/fit_vi.py"


rule hmc_running_predictive:
    """HMC's running predictive: test accuracy and NLL of the first n kept samples, per chain and pooled."""
    input:
        data_inputs(),
        hmc=expand(f"{R}/hmc/chain{{chain}}/samples.npz", chain=hmc_chains()),
    output:
        report(
            f"{R}/data/hmc_running_predictive.csv",
            caption="../report/data_hmc_running_predictive.rst",
            category="Data",
        ),
    log:
        f"{R}/logs/hmc_running_predictive.log",
    benchmark:
        f"{R}/benchmarks/hmc_running_predictive.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        gpu=1,
        mem_mb=memory_mb(copies_of_samples=1, chains=len(hmc_chains())),
        runtime=60,
    params:
        data=config["data"],
        model=config["model"],
        matmul_precision=config["matmul_precision"],
    script:
        "../scripts/hmc_running_predictive.py"
