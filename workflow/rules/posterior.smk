# Experiment C's posteriors: HMC chains (one job each, resumable), the deep ensemble and mean-field VI.
import json
import sys
from pathlib import Path
from types import SimpleNamespace


def hmc_sampling_config(wildcards=None):
    """The hash of what a chain's samples depend on (its checkpoint directory's suffix), recorded in diagnostics.json."""
    return Path(hmc_checkpoint(SimpleNamespace(chain=0))).name.removeprefix(
        "checkpoint-"
    )


def chains_sampled_under_another_config():
    """The samples of this config's chains that were drawn under another sampling config (diagnostics.json records it)."""
    stale = []
    for chain in hmc_chains():
        folder = Path(f"{R}/hmc/chain{chain}")
        try:
            recorded = json.loads((folder / "diagnostics.json").read_text())
        except (OSError, ValueError):
            continue
        if (folder / "samples.npz").exists() and recorded.get(
            "sampling_config"
        ) not in (None, hmc_sampling_config()):
            stale.append(f"{folder}/samples.npz")
    return stale


# Snakemake would delete finished chains to resample them under a changed config: stop before any job
# instead. protected() below stops that too, but not for root, for whom os.access (Snakemake's
# test) ignores file modes. (An input function cannot stop it: Snakemake takes its error for "rule
# not applicable" and then uses the existing file as a source, silently.)
_stale_chains = chains_sampled_under_another_config()
if _stale_chains:
    sys.exit(
        f"HMC samples {_stale_chains[0]}"
        + (f" and {len(_stale_chains) - 1} more" if len(_stale_chains) > 1 else "")
        + " were drawn under another config than this one (posterior.hmc, data, model, posterior.prior_sd or "
        "matmul_precision changed), and Snakemake would delete these finished chains to resample them.\n"
        "To resample, delete them first: rm -f "
        + " ".join(_stale_chains)
        + "\nElse restore the config, or run the new one under another name."
    )


rule hmc_chain:
    """One NumPyro HMC chain, sampled in checkpointed chunks: a killed job resumes where it stopped."""
    input:
        data_inputs(),
    output:
        # protected (read-only): a changed sampling config stops Snakemake before any job instead of
        # deleting a finished chain (GPU hours at the paper's scale); delete the samples to resample
        samples=protected(f"{R}/hmc/chain{{chain}}/samples.npz"),
        diagnostics=f"{R}/hmc/chain{{chain}}/diagnostics.json",
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
        sampling_config=hmc_sampling_config,
    script:
        "../scripts/hmc_chain.py"


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
        matmul_precision=config["matmul_precision"],
    script:
        "../scripts/hmc_running_predictive.py"
