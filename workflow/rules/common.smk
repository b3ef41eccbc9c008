# Helpers shared by every stage: output paths, data inputs, conda environments. The config was
# checked by the Snakefile (compactbnn.config.checks) before this file is read.
import hashlib
import json
import shlex
import sys
from pathlib import Path

from snakemake.settings.types import DeploymentMethod

from compactbnn.config import checks as config_checks
from compactbnn.config.shapes import model_params, perm_widths

R = f"results/{config['name']}"
# Conda environment of every rule, used with --sdm conda: envs/cpu.yaml, or envs/gpu.yaml (CUDA 12 jax)
# with conda_env: gpu. Paths are relative to this file; the jobs find the project's code in src/ by
# themselves (workflow/scripts/common.py), so the env lists third-party packages only.
CONDA_ENV = f"../../envs/{config['conda_env']}.yaml"


def pick(section, *keys):
    """The keys of a config section that a job reads: its params, so other changes do not rerun it."""
    return {key: section[key] for key in keys}


def notebook_python():
    """The Python that runs the notebooks: the conda env's with --sdm conda, else the one running Snakemake
    (so that a virtual environment need not be activated). The notebooks import compactbnn from this
    repository's src/ (PYTHONPATH), so a conda env without the project runs them too. A shell word, quoted:
    the Snakefile gave sys.executable a safe name, but a shell: command quotes every path it is given.
    """
    if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
        return "PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} python"
    return shlex.quote(sys.executable)


def data_inputs():
    """Files the data set needs: the cached MNIST arrays, unless IDX files or the digits are used."""
    data = config["data"]
    if data["dataset"] == "mnist" and data["idx_dir"] is None:
        return [f"{data['root']}/mnist.npz"]
    return []


# What an HMC chain's samples depend on: all of posterior.hmc but the number of chains and the
# acceptance threshold (read by the script from the config), so neither reruns a finished chain.
HMC_SAMPLING = {
    key: value
    for key, value in config["posterior"]["hmc"].items()
    if key not in ("chains", "min_accept_rate")
}


def config_hash(section):
    """A short hash of a config section: names checkpoints, so a changed config never resumes a stale run."""
    return hashlib.sha256(json.dumps(section, sort_keys=True).encode()).hexdigest()[:12]


# The hash of what a chain's samples depend on: it names the chains' checkpoints and is recorded in
# their diagnostics.json, so a changed config never resumes, nor silently keeps, a stale chain.
HMC_SAMPLING_CONFIG = config_hash(
    [
        config["data"],
        config["model"],
        HMC_SAMPLING,
        config["posterior"]["prior_sd"],
        config["matmul_precision"],
    ]
)


def hmc_checkpoint(wildcards):
    """A chain's checkpoint directory, keyed by HMC_SAMPLING_CONFIG."""
    return f"{R}/hmc/chain{wildcards.chain}/checkpoint-{HMC_SAMPLING_CONFIG}"


# What an SG-MCMC chain's samples depend on: all of posterior.sgmcmc but the number of chains, and the data,
# model, prior and matmul precision; its hash names the chains' checkpoints, as HMC's does (a changed config
# reruns the chains: an hour on 2 CPU cores at the paper's scale, so their samples are not protected).
SGMCMC_SAMPLING = {
    key: value
    for key, value in config["posterior"]["sgmcmc"].items()
    if key != "chains"
}
SGMCMC_SAMPLING_CONFIG = config_hash(
    [
        config["data"],
        config["model"],
        SGMCMC_SAMPLING,
        config["posterior"]["prior_sd"],
        config["matmul_precision"],
    ]
)


def sgmcmc_checkpoint(wildcards):
    """An SG-MCMC chain's checkpoint directory, keyed by SGMCMC_SAMPLING_CONFIG."""
    return f"{R}/sgmcmc/chain{wildcards.chain}/checkpoint-{SGMCMC_SAMPLING_CONFIG}"


# Checkpoints of earlier configs (changed, or failed and abandoned) are never resumed: say where they are.
if workflow.is_main_process:
    for _folder, _current, _label in (
        ("hmc", HMC_SAMPLING_CONFIG, "HMC"),
        ("sgmcmc", SGMCMC_SAMPLING_CONFIG, "SG-MCMC"),
    ):
        _note = config_checks.stale_checkpoints_note(
            f"{R}/{_folder}", f"checkpoint-{_current}", _label
        )
        if _note:
            print(_note, file=sys.stderr)


def hmc_samples_mb(chains):
    """Size in MB of the kept float32 samples of that many chains (1,630 MB per chain for the paper)."""
    return (
        chains * config["posterior"]["hmc"]["num_kept"] * model_params(config) * 4 / 1e6
    )


def memory_mb(copies_of_samples, chains=1, base=4000):
    """A job's mem_mb: a base plus copies of the HMC samples it holds, growing with each retry."""
    needed = base + copies_of_samples * hmc_samples_mb(chains)
    return lambda wildcards, attempt: int(needed * attempt)


def not_runs():
    return range(config["not_experiment"]["runs"])


def hmc_chains():
    return range(config["posterior"]["hmc"]["chains"])


def sgmcmc_chains():
    return range(config["posterior"]["sgmcmc"]["chains"])


def sgmcmc_samples_mb():
    """Size in MB of the kept float32 samples of all SG-MCMC chains (78 MB for config.yaml's 4 chains x 12 at 784-512-10)."""
    section = config["posterior"]["sgmcmc"]
    kept = section["cycles"] * section["samples_per_cycle"]
    return section["chains"] * kept * model_params(config) * 4 / 1e6


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
        ) not in (None, HMC_SAMPLING_CONFIG):
            stale.append(f"{folder}/samples.npz")
    return stale


# Snakemake would delete finished chains to resample them under a changed config: stop before any job
# instead. protected() on hmc_chain's samples stops that too, but not for root, for whom os.access
# (Snakemake's test) ignores file modes. (An input function cannot stop it: Snakemake takes its error for "rule
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


# the paper's figures, then supplementary ones (the authors' other analyses)
FIGURES = ["figure1", "figure2", "figure3", "figure4", "figure_s1", "figure_s2"]


def final_targets():
    return [
        *expand(f"{R}/figures/{{figure}}.{{ext}}", figure=FIGURES, ext=["pdf", "png"]),
        *expand(f"{R}/tables/table1.{{ext}}", ext=["csv", "md", "tex"]),
        f"{R}/claims.json",
        f"{R}/claims.md",
        f"{R}/claims.html",
    ]


# Figure 3 left's own HMC reference and the low-rank Gaussian's draws (rules compact, posterior_metrics)
def sigma_reference():
    """Figure 3 left's own HMC reference (posterior.compact.sigma_reference) where it differs from reference, else None.

    The authors saved sigma only in MNIST_eval_pairplot.py, aligned to the unaligned mean, while their Table 1
    and pruning align to the first sample; such a config aligns the HMC samples twice. It enters the rules'
    params, inputs and outputs only then, so configs without it keep their jobs as they were.
    """
    section = config["posterior"]["compact"]
    other = section.get("sigma_reference")
    return other if other not in (None, section["reference"]) else None


def sigma_reference_params():
    return {"sigma_reference": sigma_reference()} if sigma_reference() else {}


def sigma_reference_file():
    return (
        {"hmc_rebasin_sigma": f"{R}/compact/hmc_q_r_sigma.npz"}
        if sigma_reference()
        else {}
    )


def low_rank_draws_params():
    """posterior.compact.low_rank_q_samples when set (null: q_samples, and no param, as before the key)."""
    draws = config["posterior"]["compact"].get("low_rank_q_samples")
    return {"low_rank_q_samples": draws} if draws is not None else {}
