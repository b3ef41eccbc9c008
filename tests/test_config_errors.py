"""Bad configs are refused before any job, the key (or file) named in the message's first line.

The config dataclasses refuse bad fields by the same rules (``compactbnn.config.fields``).
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import pytest

from conftest import REPO, copy_workflow, snakemake

from compactbnn.config import checks, keys, shapes
from compactbnn.config.checks import ConfigError, check_config
from compactbnn.config.datasets import NUM_EXAMPLES, NUM_FEATURES

NAN, INF = float("nan"), float("inf")
DELETE = object()  # an override that removes the key


def _smoke_config() -> dict:
    cfg = checks.read_config_file(REPO / "config.yaml")
    checks.merge(cfg, checks.read_config_file(REPO / "presets" / "smoke.yaml"))
    return cfg


SMOKE = _smoke_config()
SCHEMA = checks.load_schema()


def _apply(cfg: dict, override: dict) -> dict:
    cfg = copy.deepcopy(cfg)
    for key, value in override.items():
        *parents, name = key.split(".")
        section = cfg
        for part in parents:
            section = section[part]
        if value is DELETE:
            del section[name]
        else:
            section[name] = value
    return cfg


# (override by dotted key, the key the first line must name); the smoke preset is the base:
# digits, hidden [32], 60 HMC iterations keeping 20 of 20..59, 2 chains.
BAD_CONFIGS = [
    # name: a plain directory name only (issue 13, item 1)
    ({"name": ".."}, "name"),
    ({"name": "."}, "name"),
    ({"name": "a/b"}, "name"),
    ({"name": "../elsewhere"}, "name"),
    ({"name": ""}, "name"),
    ({"name": ".hidden"}, "name"),
    ({"name": "-rf"}, "name"),
    ({"name": "x" * 101}, "name"),
    ({"name": 3}, "name"),
    # NaN and infinity
    ({"not_experiment.training.learning_rate": NAN}, "not_experiment.training.learning_rate"),
    ({"posterior.vi.learning_rate": INF}, "posterior.vi.learning_rate"),
    ({"posterior.vi.init_sd": INF}, "posterior.vi.init_sd"),
    ({"posterior.compact.retained_percents": [NAN]}, "posterior.compact.retained_percents[0]"),
    ({"posterior.prior_sd": -INF}, "posterior.prior_sd"),
    ({"posterior.hmc.step_size": NAN}, "posterior.hmc.step_size"),
    ({"claims.control_ratio": NAN}, "claims.control_ratio"),
    # whole numbers written as floats, and booleans, where integers are meant
    ({"not_experiment.runs": 2.0}, "not_experiment.runs"),
    ({"posterior.hmc.chains": 2.0}, "posterior.hmc.chains"),
    ({"interpolation.training.epochs": 8.0}, "interpolation.training.epochs"),
    ({"model.hidden": [32.0]}, "model.hidden[0]"),
    ({"not_experiment.runs": True}, "not_experiment.runs"),
    ({"posterior.hmc.num_steps": 20.5}, "posterior.hmc.num_steps"),
    # data
    ({"data.idx_dir": "resources/idx"}, "data.idx_dir"),  # digits has no IDX files
    ({"data.dataset": "mnist", "data.idx_dir": "no/such/directory"}, "data.idx_dir"),
    ({"data.dataset": "mnist", "data.idx_dir": "notebooks"}, "data.idx_dir"),  # exists, lacks the files
    ({"data.dataset": "cifar10"}, "data.dataset"),
    ({"data.train_size": 5000}, "data.train_size"),
    ({"data.test_size": 400}, "data.test_size"),
    ({"data": "digits"}, "data"),
    # unknown, missing and mistyped keys
    ({"posterior.hmc.chians": 3}, "posterior.hmc.chians"),
    ({"colour": "blue"}, "colour"),
    ({"not_experiment.runz": 3}, "not_experiment.runz"),
    ({"posterior.hmc.seed": DELETE}, "posterior.hmc.seed"),
    ({"not_experiment.runs": "five"}, "not_experiment.runs"),
    ({"posterior.hmc": None}, "posterior.hmc"),
    ({"posterior.hmc.adapt_step_size": "yes"}, "posterior.hmc.adapt_step_size"),
    # ranges and choices
    ({"posterior.hmc.step_size": -0.1}, "posterior.hmc.step_size"),
    ({"posterior.hmc.chains": 0}, "posterior.hmc.chains"),
    ({"model.hidden": []}, "model.hidden"),
    ({"model.hidden": [1]}, "model.hidden[0]"),
    ({"matmul_precision": "fast"}, "matmul_precision"),
    ({"compilation_cache": ""}, "compilation_cache"),
    ({"compilation_cache": 3}, "compilation_cache"),
    ({"figures.barrier": "maximum"}, "figures.barrier"),
    ({"not_experiment.training.optimizer": "sdg"}, "not_experiment.training.optimizer"),
    ({"not_experiment.training.momentum": 1.0}, "not_experiment.training.momentum"),
    ({"posterior.hmc.init": "Prior"}, "posterior.hmc.init"),
    ({"posterior.compact.sigma_bins": 1}, "posterior.compact.sigma_bins"),
    ({"posterior.compact.retained_percents": [100]}, "posterior.compact.retained_percents"),
    ({"posterior.compact.matching": "weight"}, "posterior.compact.vi_activation_draws"),
    ({"posterior.compact.ensemble_alignment": "both"}, "posterior.compact.ensemble_alignment"),
    ({"not_experiment.pairs": "shared"}, "not_experiment.pairs"),
    ({"conda_env": "cuda"}, "conda_env"),
    # rules across keys
    ({"posterior.hmc.keep_last": 60}, "posterior.hmc.keep_last"),
    ({"posterior.hmc.keep_first": 60}, "posterior.hmc.keep_first"),
    ({"posterior.hmc.num_kept": 50}, "posterior.hmc.num_kept"),
    ({"posterior.hmc.adapt_step_size": True}, "posterior.hmc.warmup"),
    ({"posterior.hmc.warmup": 5}, "posterior.hmc.warmup"),
    ({"posterior.hmc.num_kept": 1, "posterior.hmc.chains": 1}, "posterior.hmc.num_kept"),
    ({"posterior.hmc.train_size": 2000}, "posterior.hmc.train_size"),
    ({"not_experiment.match_size": 5000}, "not_experiment.match_size"),
    ({"not_experiment.levels": 40}, "not_experiment.levels"),
    # level_indices: positions in the smoke preset's grid of 6 levels, increasing, at least two, each once
    ({"not_experiment.level_indices": [0, 6]}, "not_experiment.level_indices"),
    ({"not_experiment.level_indices": [3, 1]}, "not_experiment.level_indices"),
    ({"not_experiment.level_indices": [2, 2]}, "not_experiment.level_indices"),
    ({"not_experiment.level_indices": [2]}, "not_experiment.level_indices"),
    ({"not_experiment.level_indices": [-1, 2]}, "not_experiment.level_indices[0]"),
    ({"not_experiment.level_indices": 3}, "not_experiment.level_indices"),
    ({"not_experiment.lambdas": 4, "figures.barrier": "midpoint"}, "not_experiment.lambdas"),
    ({"posterior.ensemble.training.prior_sd": 2.0}, "posterior.ensemble.training.prior_sd"),
    ({"claims.skip": ["no_such_claim"]}, "claims.skip"),
    # model.kind and each kind's own keys (issue 18): config.yaml's hidden: [512] must be set to null for another kind
    ({"model.kind": "transformer"}, "model.kind"),
    ({"model.kind": "CNN"}, "model.kind"),
    ({"model.hidden": None}, "model.hidden"),  # kind mlp (absent) needs its widths
    ({"model.kind": "cnn"}, "model.hidden"),  # config.yaml's hidden left over
    ({"model.kind": "cnn", "model.hidden": None}, "model.channels"),
    ({"model.kind": "cnn", "model.hidden": None, "model.channels": [8]}, "model.dense"),
    ({"model.channels": [8], "model.dense": []}, "model.channels"),  # a CNN key on an MLP
    ({"model.kind": "cnn", "model.hidden": None, "model.channels": [1], "model.dense": []}, "model.channels[0]"),
    ({"model.kind": "cnn", "model.hidden": None, "model.channels": [], "model.dense": []}, "model.channels"),
    ({"model.kind": "cnn", "model.hidden": None, "model.channels": [8, 8.0], "model.dense": []}, "model.channels[1]"),
    ({"model.kind": "cnn", "model.hidden": None, "model.channels": 8, "model.dense": []}, "model.channels"),
    ({"model.kind": "cnn", "model.hidden": None, "model.channels": [4, 4, 4, 4], "model.dense": []}, "model.channels"),
    ({"model.kind": "cnn", "model.hidden": None, "model.channels": [8, 4], "model.dense": [16]}, "not_experiment.levels"),
    ({"model.kind": "cnn", "model.hidden": None, "model.channels": [8], "model.dense": [16], "model.width": 8},
     "model.width"),
    ({"model.kind": "resnet", "model.hidden": None, "model.width": 8}, "model.blocks"),
    ({"model.kind": "resnet", "model.hidden": None, "model.width": 8, "model.blocks": 0}, "model.blocks"),
    ({"model.kind": "resnet", "model.hidden": None, "model.width": 8.0, "model.blocks": 1}, "model.width"),
    ({"model.kind": "resnet", "model.hidden": None, "model.width": 4, "model.blocks": 1}, "not_experiment.levels"),
    ({"model.kind": "resnet", "model.hidden": None, "model.width": 8, "model.blocks": 1, "model.dense": [4]},
     "model.dense"),
    ({"model.kind": "resnet", "model.hidden": [32], "model.width": 8, "model.blocks": 1}, "model.hidden"),
]


def _first_line(cfg: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        check_config(cfg, SCHEMA)
    return str(caught.value).splitlines()[0]


@pytest.mark.parametrize("override, key", BAD_CONFIGS, ids=[f"{i}-{k}" for i, (_, k) in enumerate(BAD_CONFIGS)])
def test_bad_config_is_refused_naming_the_key_first(override, key):
    first = _first_line(_apply(SMOKE, override))
    assert first.startswith(f"config key {key}: "), first


def test_table_holds_forty_bad_configs():
    assert len(BAD_CONFIGS) >= 40


@pytest.mark.parametrize("override, hint", [
    ({"posterior.hmc.chians": 3}, "did you mean chains?"),
    ({"figures.barrier": "maximum"}, "did you mean max?"),
    ({"not_experiment.runs": 2.0}, "(write 2)"),
    ({"claims.skip": ["hmc_prior_level_sigmas"]}, "did you mean hmc_prior_level_sigma?"),
])
def test_message_suggests_the_fix(override, hint):
    assert hint in _first_line(_apply(SMOKE, override))


def test_dotted_key_is_explained():
    cfg = copy.deepcopy(SMOKE)
    cfg["posterior.hmc.chains"] = 3  # a YAML file's `posterior.hmc.chains: 3`
    assert "write nested keys as nested mappings" in _first_line(cfg)


def test_several_problems_are_listed_after_the_first_line():
    with pytest.raises(ConfigError) as caught:
        check_config(_apply(SMOKE, {"colour": "blue", "posterior.hmc.chains": 0}), SCHEMA)
    lines = str(caught.value).splitlines()
    assert len(lines) < 10 and sum("config key" in line for line in lines) == 2, lines


@pytest.mark.parametrize("preset", [None, "quick", "smoke", "cnn", "workstation", "paper_cpu"])
def test_every_preset_passes_and_gets_the_defaults(preset):
    cfg = checks.read_config_file(REPO / "config.yaml")
    if preset:
        checks.merge(cfg, checks.read_config_file(REPO / "presets" / f"{preset}.yaml"))
    check_config(cfg, SCHEMA)
    assert cfg["conda_env"] == "cpu" and cfg["posterior"]["hmc"]["min_accept_rate"] == 0.05
    assert cfg["compilation_cache"] == ".snakemake/jax-cache"


def test_a_whole_number_name_and_odd_but_plain_names_pass():
    for name in ("paper2", "a..b", "run_1.final", "x" * 100):
        check_config(_apply(SMOKE, {"name": name}), SCHEMA)


@pytest.mark.parametrize("text, problem", [
    ("name: [smoke\ndata: {}\n", "YAML syntax error at line"),
    ("", "is empty"),
    ("- name\n- smoke\n", "holds a list"),
    ("just a sentence\n", "holds a str"),
])
def test_config_file_that_is_not_a_mapping_is_named(tmp_path, text, problem):
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        checks.read_config_file(path)
    first = str(caught.value).splitlines()[0]
    assert first.startswith(f"config file {path}: ") and problem in first, first


@pytest.mark.parametrize("override, field", [
    ({"posterior.hmc.keep_last": 60}, "keep_last"),
    ({"posterior.hmc.keep_first": 60}, "keep_first"),
    ({"posterior.hmc.num_kept": 50}, "num_kept"),
    ({"posterior.hmc.adapt_step_size": True}, "num_warmup"),
    ({"posterior.hmc.warmup": 5}, "num_warmup"),
])
def test_hmc_config_refuses_by_the_rule_that_names_the_key(override, field):
    """One rule: the check names the key that HMCConfig, built from the same section, names as its field."""
    from compactbnn.config.fields import FieldError
    from compactbnn.inference import hmc

    cfg = _apply(SMOKE, override)
    with pytest.raises(ConfigError) as refused:
        check_config(cfg, SCHEMA)  # fills in the defaults before it refuses
    with pytest.raises(FieldError) as caught:
        hmc.HMCConfig(**keys.hmc_kwargs(cfg["posterior"]["hmc"], cfg["posterior"]["prior_sd"], cfg["matmul_precision"]))
    assert caught.value.field == field and str(caught.value).startswith(f"HMCConfig.{field} must be ")
    assert str(refused.value).startswith(f"config key {keys.HMC_KEYS[field]}: must be "), str(refused.value)


def test_presets_build_the_library_configs():
    from compactbnn import train
    from compactbnn.inference import hmc, vi

    cfg = check_config(copy.deepcopy(SMOKE), SCHEMA)
    posterior = cfg["posterior"]
    config = hmc.HMCConfig(**keys.hmc_kwargs(posterior["hmc"], posterior["prior_sd"], cfg["matmul_precision"]))
    assert config.num_iterations == posterior["hmc"]["iterations"] and config.num_warmup == posterior["hmc"]["warmup"]
    assert vi.VIConfig(**keys.vi_kwargs(posterior["vi"], posterior["prior_sd"])).init_sd == posterior["vi"]["init_sd"]
    for section in keys.TRAINING_SECTIONS:
        train.TrainConfig(**keys.train_kwargs(keys.lookup(cfg, section), prior_sd=posterior["prior_sd"]))


@pytest.mark.parametrize("field, value", [("batch_size", True), ("batch_size", 2.5), ("batch_size", 64.0),
                                          ("epochs", False), ("epochs", 2.5), ("learning_rate", True),
                                          ("learning_rate", float("inf")), ("momentum", 1.0), ("optimizer", "rmsprop")])
def test_train_config_refuses_a_bool_and_a_fraction_as_an_integer(field, value):
    from compactbnn import train

    with pytest.raises(ValueError, match=f"^TrainConfig.{field} must "):
        train.TrainConfig(**{field: value})


def test_the_three_config_dataclasses_refuse_in_one_style():
    import numpy as np

    from compactbnn import train
    from compactbnn.config.fields import FieldError
    from compactbnn.inference import hmc, vi

    for cls, field in ((train.TrainConfig, "batch_size"), (vi.VIConfig, "batch_size"), (hmc.HMCConfig, "num_steps")):
        for value in (True, 2.5, 0):
            with pytest.raises(FieldError) as caught:
                cls(**{field: value})
            assert caught.value.field == field and str(caught.value).startswith(f"{cls.__name__}.{field} must be ")
        assert getattr(cls(**{field: np.int64(7)}), field) == 7  # numpy's integers are integers


def test_constants_without_numpy_equal_the_library():
    from compactbnn import data
    from compactbnn.models.mlp import MLP

    digits = data.load("digits")
    assert NUM_EXAMPLES["digits"] == (len(digits["y_train"]), len(digits["y_test"]))
    assert NUM_FEATURES["digits"] == digits["x_train"].shape[1]
    assert shapes.num_params([784, 512, 10]) == MLP((784, 512, 10)).num_params == 407050
    assert shapes.num_params([64, 32, 16, 10]) == MLP((64, 32, 16, 10)).num_params
    smoke = check_config(copy.deepcopy(SMOKE), SCHEMA)
    model = MLP(tuple(shapes.widths(smoke)))
    assert (model.num_features, model.num_classes) == (digits["x_train"].shape[1], len(set(digits["y_train"].tolist())))


@pytest.mark.parametrize("dataset", ["digits", "mnist"])
@pytest.mark.parametrize("model_cfg", [
    {"hidden": [32]}, {"kind": "mlp", "hidden": [64, 16]},
    {"kind": "cnn", "hidden": None, "channels": [8], "dense": []},
    {"kind": "cnn", "hidden": None, "channels": [8, 16], "dense": [32]},
    {"kind": "cnn", "hidden": None, "channels": [4, 6, 5], "dense": [7, 3]},
    {"kind": "resnet", "hidden": None, "width": 8, "blocks": 2},
])
def test_shapes_describe_the_network_the_workflow_builds(dataset, model_cfg):
    """compactbnn.config.shapes (standard library, for the config check, cost model and memory) and the
    Model that workflow/scripts/common.py builds agree on permutation widths and parameter count, per kind."""
    import importlib.util
    import sys

    cfg = copy.deepcopy(SMOKE)
    cfg["data"]["dataset"] = dataset
    cfg["model"] = dict(model_cfg)
    cfg["not_experiment"]["levels"] = 2
    check_config(cfg, SCHEMA)
    sys.path.insert(0, str(REPO / "workflow" / "scripts"))
    try:
        spec = importlib.util.spec_from_file_location("workflow_common", REPO / "workflow" / "scripts" / "common.py")
        common = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(common)
    finally:
        sys.path.remove(str(REPO / "workflow" / "scripts"))
    model = common.model(cfg["data"], cfg["model"])
    assert type(model).__name__.lower() == shapes.kind(cfg["model"])
    assert list(model.perm_sizes) == shapes.perm_widths(cfg)
    assert model.num_params == shapes.model_params(cfg)
    assert model.num_features == NUM_FEATURES[dataset]
    assert shapes.work_per_example(cfg) >= model.num_params
    levels = shapes.not_levels_per_group(model.perm_sizes, 2)
    assert [group[-1] for group in levels] == [n - 1 for n in model.perm_sizes]


def test_not_levels_per_group_span_every_group_and_refuse_too_many():
    assert shapes.not_levels_per_group([512], 50) == [shapes.not_levels(512, 50)]  # the paper's levels
    assert shapes.not_levels_per_group([8, 16, 32], 4) == [(1, 3, 5, 7), (1, 5, 10, 15), (1, 11, 21, 31)]
    with pytest.raises(ValueError, match="group of 4 units has only 3 distinct NoT levels"):
        shapes.not_levels_per_group([16, 4], 5)


def test_experiment_levels_pick_the_paper_grid_by_position():
    """presets/paper_cpu.yaml's positions are the NoT levels whose numbers the paper prints (PAPER.md, Figure 2)."""
    paper_cpu = checks.read_config_file(REPO / "presets" / "paper_cpu.yaml")["not_experiment"]["level_indices"]
    assert shapes.experiment_levels([512], 50, paper_cpu) == [(1, 11, 53, 105, 209, 302, 406, 458, 511)]
    assert shapes.experiment_levels([512], 50) == shapes.not_levels_per_group([512], 50)
    # every permutation group is picked at the same positions of its own range
    assert shapes.experiment_levels([8, 16, 32], 4, [0, 3]) == [(1, 7), (1, 15), (1, 31)]
    assert shapes.num_trained_levels({"levels": 50, "level_indices": paper_cpu}) == 9
    assert shapes.num_trained_levels({"levels": 50, "level_indices": None}) == 50


def test_cnn_work_counts_each_weight_once_per_position():
    cfg = copy.deepcopy(SMOKE)
    cfg["model"] = {"kind": "cnn", "hidden": None, "channels": [8], "dense": []}
    # digits 1x8x8: conv 1->8 (80 parameters) at 64 positions, then 8 * 4 * 4 -> 10 (1,290)
    assert shapes.model_params(cfg) == 80 + 1290
    assert shapes.work_per_example(cfg) == 80 * 64 + 1290
    assert shapes.work_per_example(SMOKE) == shapes.model_params(SMOKE) == shapes.num_params([64, 32, 10])


def test_results_path_blocked_by_a_file_is_refused_in_one_line(tmp_path):
    (tmp_path / "results").write_text("a file where the results directory should be")
    with pytest.raises(ConfigError) as caught:
        checks.check_results_writable(tmp_path / "results" / "smoke")
    assert str(caught.value) == f"config key name: {tmp_path / 'results' / 'smoke'} cannot be created: {tmp_path / 'results'} is not a directory"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_results_directory_is_refused_in_one_line(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results").chmod(0o555)
    try:
        with pytest.raises(ConfigError) as caught:
            checks.check_results_writable(tmp_path / "results" / "smoke")
    finally:
        (tmp_path / "results").chmod(0o755)
    assert len(str(caught.value).splitlines()) == 1 and str(tmp_path / "results") in str(caught.value)
    checks.check_results_writable(tmp_path / "results" / "smoke")


# ---------------------------------------------------------------------------------------------
# Through Snakemake: a handful of cases prove that its output leads with the message


SNAKEMAKE_PREAMBLE = ("Using workflow specific profile", "Config file ")  # Snakemake's own info lines


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("bad-configs"))


@pytest.mark.parametrize("text, first", [
    ("posterior:\n  hmc:\n    chians: 3\n", "config key posterior.hmc.chians: unknown key; did you mean chains?"),
    ("name: ..\n", "config key name: "),
    ("not_experiment:\n  runs: 2.0\n", "config key not_experiment.runs: must be an integer, got 2.0"),
    ("posterior:\n  vi:\n    init_sd: .inf\n", "config key posterior.vi.init_sd: must be a finite number, got inf"),
    ("data:\n  idx_dir: resources/idx\n", "config key data.idx_dir: applies to mnist only"),
])
def test_snakemake_output_leads_with_the_message(workdir, text, first):
    (workdir / "bad.yaml").write_text(text)
    result = snakemake(workdir, "-n", "--cores", "1", "--configfile", "presets/smoke.yaml", "bad.yaml", timeout=120)
    assert result.returncode != 0
    lines = [line for line in result.stdout.splitlines() if not line.startswith(SNAKEMAKE_PREAMBLE)]
    assert lines and lines[0].startswith(first), result.stdout[-2000:]
    assert len(result.stdout.splitlines()) < 12 and "Traceback" not in result.stdout, result.stdout
    assert "Job stats" not in result.stdout and not (workdir / "results").exists()


def test_broken_config_yaml_is_named_by_snakemake(workdir):
    original = (workdir / "config.yaml").read_text()
    (workdir / "config.yaml").write_text(original.replace("name: paper", "name: [paper"))
    try:
        result = snakemake(workdir, "-n", "--cores", "1", timeout=120)
    finally:
        (workdir / "config.yaml").write_text(original)
    lines = [line for line in result.stdout.splitlines() if not line.startswith(SNAKEMAKE_PREAMBLE)]
    assert result.returncode != 0 and lines[0].startswith(f"config file {workdir / 'config.yaml'}: YAML syntax error"), result.stdout


def test_config_checks_import_neither_numpy_nor_jax():
    """The Snakefile imports compactbnn.config and its checks while parsing, with Snakemake alone."""
    code = ("import sys; sys.path.insert(0, 'src'); import compactbnn.config, compactbnn.config.checks; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'jax', 'pandas')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout


def test_config_checks_command_checks_merged_files(tmp_path):
    command = [sys.executable, str(REPO / "workflow" / "scripts" / "config_checks.py")]
    result = subprocess.run(command + ["presets/quick.yaml"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout == "config quick: valid\n", result.stdout + result.stderr
    (tmp_path / "bad.yaml").write_text("posterior:\n  hmc:\n    keep_last: 100000\n")
    result = subprocess.run(command + ["presets/quick.yaml", str(tmp_path / "bad.yaml")], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 1 and result.stderr.startswith("config key posterior.hmc.keep_last: must be < posterior.hmc.iterations")
