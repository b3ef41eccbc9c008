# Helpers shared by every stage: output paths, data inputs, and the config checks that a
# JSON schema cannot express. Every check names the key, before any job runs.
import hashlib
import json
import sys

from snakemake.settings.types import DeploymentMethod

R = f"results/{config['name']}"
# Conda environment of every rule, used with --use-conda (a GPU machine: create envs/gpu.yaml yourself)
CONDA_ENV = "../../envs/cpu.yaml"
NUM_FEATURES = {"mnist": 784, "digits": 64}
NUM_CLASSES = 10


def config_error(key, message):
    raise ValueError(f"config key {key}: {message}")


def check_config(cfg):
    hidden = cfg["model"]["hidden"]
    hmc = cfg["posterior"]["hmc"]
    if not hmc["keep_first"] <= hmc["keep_last"] < hmc["iterations"]:
        config_error(
            "posterior.hmc.keep_last",
            f"kept iterations {hmc['keep_first']}..{hmc['keep_last']} must lie inside "
            f"0..{hmc['iterations'] - 1} (posterior.hmc.iterations = {hmc['iterations']})",
        )
    if hmc["num_kept"] > hmc["keep_last"] - hmc["keep_first"] + 1:
        config_error(
            "posterior.hmc.num_kept",
            f"{hmc['num_kept']} samples cannot be kept from {hmc['keep_last'] - hmc['keep_first'] + 1} iterations",
        )
    if hmc["warmup"] > 0 and not hmc["adapt_step_size"]:
        config_error(
            "posterior.hmc.warmup", "warmup iterations need adapt_step_size: true"
        )
    if cfg["not_experiment"]["levels"] > min(hidden) - 1:
        config_error(
            "not_experiment.levels",
            f"{cfg['not_experiment']['levels']} NoT levels do not fit a hidden width of {min(hidden)} "
            f"(at most {min(hidden) - 1})",
        )
    for key in ("not_experiment.lambdas", "interpolation.lambdas"):
        section, name = key.split(".")
        if cfg[section][name] % 2 == 0 and cfg["figures"]["barrier"] == "midpoint":
            config_error(
                key,
                "the midpoint barrier needs an odd number of lambdas (lambda = 0.5 on the grid)",
            )
    from compactbnn.claims import CLAIM_IDS

    unknown = sorted(set(cfg["claims"].get("skip", [])) - set(CLAIM_IDS))
    if unknown:
        config_error(
            "claims.skip", f"unknown claim ids {unknown}; known: {', '.join(CLAIM_IDS)}"
        )
    train_size = cfg["data"]["train_size"]
    if (
        hmc["train_size"] is not None
        and train_size is not None
        and hmc["train_size"] > train_size
    ):
        config_error(
            "posterior.hmc.train_size",
            f"{hmc['train_size']} exceeds data.train_size = {train_size}",
        )


check_config(config)


def notebook_python():
    """The Python that runs the notebooks: the conda env's with --use-conda, else the one running Snakemake
    (so that a virtual environment need not be activated)."""
    if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
        return "python"
    return sys.executable


def layer_sizes():
    return [
        NUM_FEATURES[config["data"]["dataset"]],
        *config["model"]["hidden"],
        NUM_CLASSES,
    ]


def data_inputs():
    """Files the data set needs: the cached MNIST arrays, unless IDX files or the digits are used."""
    data = config["data"]
    if data["dataset"] == "mnist" and data["idx_dir"] is None:
        return [f"{data['root']}/mnist.npz"]
    return []


def config_hash(section):
    """A short hash of a config section: names checkpoints, so a changed config never resumes a stale run."""
    return hashlib.sha256(json.dumps(section, sort_keys=True).encode()).hexdigest()[:12]


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
