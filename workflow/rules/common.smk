# Helpers shared by every stage: output paths, data inputs, and the config checks that a
# JSON schema cannot express. Every check names the key, before any job runs.
import hashlib
import json
import sys

from snakemake.settings.types import DeploymentMethod

R = f"results/{config['name']}"
# Conda environment of every rule, used with --use-conda (a GPU machine: create envs/gpu.yaml yourself)
CONDA_ENV = "../../envs/cpu.yaml"

# The scripts' adapters (config sections -> library objects) serve the checks below too.
sys.path.insert(0, f"{workflow.basedir}/workflow/scripts")
import common as adapters
from compactbnn.claims import CLAIM_IDS
from compactbnn.data import NUM_CLASSES, NUM_EXAMPLES, NUM_FEATURES
from compactbnn.mlp import num_params


def config_error(key, message):
    raise ValueError(f"config key {key}: {message}")


def pick(section, *keys):
    """The keys of a config section that a job reads: its params, so other changes do not rerun it."""
    return {key: section[key] for key in keys}


def check_config(cfg):
    """The checks a JSON schema cannot express; each names the key."""
    data, hidden = cfg["data"], cfg["model"]["hidden"]
    posterior, hmc = cfg["posterior"], cfg["posterior"]["hmc"]
    available_train, available_test = NUM_EXAMPLES[data["dataset"]]
    for split, available in (("train", available_train), ("test", available_test)):
        if (data[f"{split}_size"] or 0) > available:
            config_error(
                f"data.{split}_size",
                f"{data[f'{split}_size']} exceeds the {available} {split} images of {data['dataset']}",
            )
    num_train = data["train_size"] or available_train
    for key in (
        "posterior.hmc.train_size",
        "not_experiment.match_size",
        "interpolation.match_size",
        "posterior.compact.match_size",
    ):
        *path, name = key.split(".")
        section = cfg
        for part in path:
            section = section[part]
        if (section.get(name) or 0) > num_train:
            config_error(
                key, f"{section[name]} exceeds the {num_train} training images in use"
            )
    try:
        adapters.hmc_config(hmc, posterior["prior_sd"], cfg["matmul_precision"])
    except (TypeError, ValueError) as error:
        config_error(adapters.hmc_config_key(error), str(error))
    if hmc["chains"] * hmc["num_kept"] < 2:
        config_error(
            "posterior.hmc.num_kept", "sigma needs at least two kept samples in all"
        )
    if posterior["ensemble"]["training"].get("prior_sd") is not None:
        config_error(
            "posterior.ensemble.training.prior_sd",
            "the ensemble is MAP with posterior.prior_sd; set that instead",
        )
    if cfg["not_experiment"]["levels"] > min(hidden) - 1:
        config_error(
            "not_experiment.levels",
            f"{cfg['not_experiment']['levels']} NoT levels do not fit a hidden width of {min(hidden)} "
            f"(at most {min(hidden) - 1})",
        )
    if (
        cfg["not_experiment"]["lambdas"] % 2 == 0
        and cfg["figures"]["barrier"] == "midpoint"
    ):
        config_error(
            "not_experiment.lambdas",
            "the midpoint barrier needs an odd number of lambdas (lambda = 0.5 on the grid)",
        )
    unknown = sorted(set(cfg["claims"].get("skip", [])) - set(CLAIM_IDS))
    if unknown:
        config_error(
            "claims.skip", f"unknown claim ids {unknown}; known: {', '.join(CLAIM_IDS)}"
        )


check_config(config)


def notebook_python():
    """The Python that runs the notebooks: the conda env's with --use-conda, else the one running Snakemake
    (so that a virtual environment need not be activated)."""
    if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
        return "python"
    return sys.executable


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


def hmc_samples_mb(chains):
    """Size in MB of the kept float32 samples of that many chains (1,630 MB per chain for the paper)."""
    sizes = [
        NUM_FEATURES[config["data"]["dataset"]],
        *config["model"]["hidden"],
        NUM_CLASSES,
    ]
    return chains * config["posterior"]["hmc"]["num_kept"] * num_params(sizes) * 4 / 1e6


def memory_mb(copies_of_samples, chains=1, base=4000):
    """A job's mem_mb: a base plus copies of the HMC samples it holds, growing with each retry."""
    needed = base + copies_of_samples * hmc_samples_mb(chains)
    return lambda wildcards, attempt: int(needed * attempt)


def not_runs():
    return range(config["not_experiment"]["runs"])


def hmc_chains():
    return range(config["posterior"]["hmc"]["chains"])


FIGURES = ["figure1", "figure2", "figure3"]


def final_targets():
    return [
        *expand(f"{R}/figures/{{figure}}.{{ext}}", figure=FIGURES, ext=["pdf", "png"]),
        *expand(f"{R}/tables/table1.{{ext}}", ext=["csv", "md", "tex"]),
        f"{R}/claims.json",
        f"{R}/claims.md",
    ]
