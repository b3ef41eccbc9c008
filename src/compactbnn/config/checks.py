"""Every check of a workflow config that runs before any job: a bad value is refused by its key.

The first line of every refusal is ``config key a.b.c: what is wrong`` (or ``config file F: ...``
for a file that is not a YAML mapping), details follow on the next lines. The Snakefile calls
``check_config`` while parsing, so no job starts on a config that a job would refuse later.

Only the standard library, PyYAML and jsonschema (both of which Snakemake brings) and the rest of
``compactbnn.config`` (standard library only) are imported: the Snakefile parses and dry-runs
with Snakemake alone, without numpy or JAX.

The fields that become a library dataclass (``HMCConfig``, ``VIConfig``, ``TrainConfig``) are
checked by that dataclass's own rules (``compactbnn.config.fields``), applied to the config's
sections through the key maps of ``compactbnn.config.keys``: a refused field is named by its key.
``python workflow/scripts/config_checks.py FILES`` runs ``main``.
"""

from __future__ import annotations

import difflib
import math
import os
import sys
from pathlib import Path

import jsonschema
import yaml
from jsonschema import Draft202012Validator, validators

from compactbnn.config import fields, keys, shapes
from compactbnn.config.claim_ids import CLAIM_IDS
from compactbnn.config.datasets import IDX_FILES, IMAGE_SHAPES, NUM_EXAMPLES

# The schema and config.yaml belong to the repository whose src/ holds this package.
REPOSITORY = Path(__file__).resolve().parents[3]
SCHEMA = REPOSITORY / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A refused config: the first line of the message names the key (or the file)."""

    def __init__(self, key: str, message: str, details: str = ""):
        self.key = key
        first = f"config key {key}: {message}" if not key.startswith("file ") else f"config {key}: {message}"
        super().__init__(first + (f"\n{details}" if details else ""))


# ---------------------------------------------------------------------------------------------
# Config files


def read_config_file(path: str | os.PathLike) -> dict:
    """A config file's mapping; a file that is missing, not YAML, empty or not a mapping is refused by name."""
    name = f"file {path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(name, f"cannot be read ({error})") from error
    try:
        content = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(name, f"YAML syntax error{where}: {problem}", str(error)) from error
    if content is None:
        raise ConfigError(name, "is empty; it must hold keys (name: ..., data: ...)")
    if not isinstance(content, dict):
        raise ConfigError(name, f"holds a {type(content).__name__}, not keys at its top level (name: ..., data: ...)")
    return content


# ---------------------------------------------------------------------------------------------
# The schema, with whole numbers only as integers and with defaults filled in


def _is_strict_integer(checker, instance) -> bool:
    """JSON Schema counts 2.0 as an integer; Python code downstream (range, shapes) does not."""
    return isinstance(instance, int) and not isinstance(instance, bool)


_TYPE_CHECKER = Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_strict_integer)


def _set_defaults(validator, properties, instance, schema):
    """Fill in every property's default (as Snakemake's validate does), then validate the properties."""
    if isinstance(instance, dict):
        for name, subschema in properties.items():
            if "default" in subschema:
                instance.setdefault(name, subschema["default"])
    yield from Draft202012Validator.VALIDATORS["properties"](validator, properties, instance, schema)


_Validator = validators.extend(Draft202012Validator, {"properties": _set_defaults}, type_checker=_TYPE_CHECKER)

_TYPE_NAMES = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "true or false",
               "array": "a list", "object": "a mapping of keys", "null": "null"}


def load_schema(path: str | os.PathLike = SCHEMA) -> dict:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def check_schema(cfg: dict, schema: dict) -> None:
    """Validate ``cfg`` against the schema and fill in its defaults; the first problem becomes the message."""
    errors = sorted(_Validator(schema).iter_errors(cfg), key=lambda e: (list(map(str, e.absolute_path)), e.validator))
    if not errors:
        return
    first = jsonschema.exceptions.best_match(errors)
    key, message = _describe(first)
    others = [f"  config key {k}: {m}" for k, m in map(_describe, errors) if (k, m) != (key, message)]
    details = (f"{len(others)} more problem(s):\n" + "\n".join(others) + "\n" if others else "")
    details += "Every key, its type and its range: workflow/schemas/config.schema.yaml"
    raise ConfigError(key, message, details)


def _path(error) -> str:
    """a.b[0].c: keys joined by dots, list positions in brackets."""
    path = ""
    for part in error.absolute_path:
        path = f"{path}[{part}]" if isinstance(part, int) else _join(path, str(part))
    return path


def _join(parent: str, name: str) -> str:
    return f"{parent}.{name}" if parent else name


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def _describe(error) -> tuple[str, str]:
    """(key, one-line message) of a schema validation error."""
    key, value, kind, expected = _path(error), error.instance, error.validator, error.validator_value
    schema = error.schema if isinstance(error.schema, dict) else {}
    if kind == "additionalProperties":
        known = list(schema.get("properties", {}))
        unknown = sorted(set(value) - set(known))
        suggestion = _suggest(unknown[0], known)
        if "." in str(unknown[0]) and str(unknown[0]).split(".")[0] in known:
            suggestion = "; write nested keys as nested mappings (posterior: {hmc: {chains: 3}}), not as dotted names"
        elif not suggestion:
            suggestion = f"; known keys here: {', '.join(known)}"
        return _join(key, str(unknown[0])), f"unknown key{suggestion}"
    if kind == "required":
        missing = next((name for name in expected if name not in value), expected[0])
        return _join(key, missing), "missing; this section requires it"
    if kind == "type":
        wanted = expected if isinstance(expected, list) else [expected]
        names = " or ".join(_TYPE_NAMES.get(t, t) for t in wanted)
        hint = f" (write {int(value)})" if "integer" in wanted and isinstance(value, float) and value.is_integer() else ""
        return key, f"must be {names}, got {value!r}{hint}"
    if kind == "enum":
        return key, f"must be one of {', '.join(map(str, expected))}, got {value!r}{_suggest(value, expected)}"
    bounds = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}
    if kind in bounds:
        return key, f"must be {bounds[kind]} {expected}, got {value!r}"
    if kind == "minItems":
        return key, f"needs at least {expected} {'entry' if expected == 1 else 'entries'}, got {len(value)}"
    if kind == "contains":
        limits = ", ".join(f"{bounds.get(k, k)} {v}" for k, v in expected.items() if k in bounds)
        return key, f"needs at least one entry {limits}, got {value!r}"
    if key == "name" and kind in ("pattern", "minLength", "maxLength"):
        return key, (f"must be a plain directory name (letters, digits, _ . -; not starting with . or -; at most "
                     f"{schema.get('maxLength')} characters), as outputs go under results/<name>/; got {value!r}")
    if kind in ("pattern", "minLength", "maxLength"):
        return key, f"{value!r} is not allowed: {schema.get('description', error.message)}"
    return key, error.message.splitlines()[0]


# ---------------------------------------------------------------------------------------------
# Checks the schema cannot express


def check_finite(value, key: str = "") -> None:
    """NaN and infinity pass every JSON Schema bound (comparisons with NaN are false): refuse them here."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(key or "(top level)", f"must be a finite number, got {value}")
    if isinstance(value, dict):
        for name, inner in value.items():
            check_finite(inner, _join(key, str(name)))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            check_finite(inner, f"{key}[{index}]")


def check_data(data: dict) -> None:
    """Sizes within the data set; idx_dir for MNIST only, and holding the four IDX files."""
    for split, available in zip(("train", "test"), NUM_EXAMPLES[data["dataset"]]):
        if (data[f"{split}_size"] or 0) > available:
            raise ConfigError(f"data.{split}_size",
                              f"{data[f'{split}_size']} exceeds the {available} {split} images of {data['dataset']}")
    idx_dir = data.get("idx_dir")
    if idx_dir is None:
        return
    if data["dataset"] != "mnist":
        raise ConfigError("data.idx_dir", f"applies to mnist only, not to {data['dataset']}; set it to null")
    if not Path(idx_dir).is_dir():
        raise ConfigError("data.idx_dir", f"{idx_dir} is not a directory")
    missing = [stem for stem in IDX_FILES.values()
               if not (Path(idx_dir, stem).is_file() or Path(idx_dir, f"{stem}.gz").is_file())]
    if missing:
        raise ConfigError("data.idx_dir", f"{idx_dir} lacks the MNIST IDX file(s) {', '.join(s + '[.gz]' for s in missing)}")


def check_model(cfg: dict) -> None:
    """model.kind's own keys present, the other kinds' keys absent (hidden: null), a CNN's pools within the image."""
    model, dataset = cfg["model"], cfg["data"]["dataset"]
    kind = shapes.kind(model)
    for other, names in shapes.MODEL_KEYS.items():
        for name in names:
            if other == kind and model.get(name) is None:
                raise ConfigError(f"model.{name}", f"missing; model.kind {kind} needs it "
                                  f"({', '.join(f'model.{n}' for n in shapes.MODEL_KEYS[kind])})")
            if other != kind and model.get(name) is not None:
                fix = "set it to null (config.yaml sets [512])" if name == "hidden" else "remove it"
                raise ConfigError(f"model.{name}", f"applies to model.kind {other} only, not to {kind}; {fix}")
    if kind == "cnn":
        maps = shapes.cnn_feature_maps(IMAGE_SHAPES[dataset], model["channels"])
        if min(maps[-1][1:]) < 1:
            fit = sum(min(m[1:]) >= 1 for m in maps[1:])
            _, height, width = IMAGE_SHAPES[dataset]
            raise ConfigError("model.channels", f"{len(model['channels'])} convolutions, each followed by a 2x2 max-pool, "
                              f"shrink the {height}x{width} images of {dataset} to nothing (at most {fit})")


def check_library_fields(cfg: dict) -> None:
    """The rules of the library's config dataclasses on the sections they are built from, by config key."""
    hmc = keys.hmc_kwargs(cfg["posterior"]["hmc"], cfg["posterior"]["prior_sd"], cfg["matmul_precision"])
    try:
        fields.check_fields(fields.HMC_FIELDS, hmc)
        fields.check_hmc(hmc, spelling=keys.HMC_SPELLING)
    except fields.FieldError as error:
        raise ConfigError(keys.HMC_KEYS[error.field], error.problem) from error
    try:
        fields.check_fields(fields.VI_FIELDS, keys.vi_kwargs(cfg["posterior"]["vi"], cfg["posterior"]["prior_sd"]))
    except fields.FieldError as error:
        raise ConfigError(keys.VI_KEYS[error.field], error.problem) from error
    check_sgmcmc_fields(cfg)
    for section in keys.TRAINING_SECTIONS:
        try:
            fields.check_fields(fields.TRAIN_FIELDS, keys.train_kwargs(keys.lookup(cfg, section)))
        except fields.FieldError as error:
            raise ConfigError(f"{section}.{error.field}", error.problem) from error


def check_sgmcmc_fields(cfg: dict) -> None:
    """SGMCMCConfig's rules on posterior.sgmcmc, and its cycles laid out on the training images it samples on."""
    sgmcmc = cfg["posterior"]["sgmcmc"]
    values = keys.sgmcmc_kwargs(sgmcmc, cfg["posterior"]["prior_sd"], cfg["matmul_precision"])
    num_train = cfg["data"]["train_size"] or NUM_EXAMPLES[cfg["data"]["dataset"]][0]
    try:
        fields.check_fields(fields.SGMCMC_FIELDS, values)
        fields.check_sgmcmc(values, spelling=keys.SGMCMC_SPELLING)
        fields.cycle_layout(values, min(num_train, sgmcmc.get("train_size") or num_train), spelling=keys.SGMCMC_SPELLING)
    except fields.FieldError as error:
        raise ConfigError(keys.SGMCMC_KEYS[error.field], error.problem) from error


def check_semantics(cfg: dict) -> None:
    """The checks that relate several keys or the data set; each names the key."""
    data = cfg["data"]
    posterior, hmc = cfg["posterior"], cfg["posterior"]["hmc"]
    check_data(data)
    check_model(cfg)
    num_train = data["train_size"] or NUM_EXAMPLES[data["dataset"]][0]
    for key in ("posterior.hmc.train_size", "posterior.sgmcmc.train_size", "not_experiment.match_size", "interpolation.match_size",
                "posterior.compact.match_size"):
        parent, name = key.rsplit(".", 1)
        section = keys.lookup(cfg, parent)
        if (section.get(name) or 0) > num_train:
            raise ConfigError(key, f"{section[name]} exceeds the {num_train} training images in use")
    check_library_fields(cfg)
    if hmc["chains"] * hmc["num_kept"] < 2:
        raise ConfigError("posterior.hmc.num_kept", "sigma needs at least two kept samples in all")
    if posterior["ensemble"]["training"].get("prior_sd") is not None:
        raise ConfigError("posterior.ensemble.training.prior_sd", "the ensemble is MAP with posterior.prior_sd; set that instead")
    levels, narrowest = cfg["not_experiment"]["levels"], min(shapes.perm_widths(cfg))
    if levels > narrowest - 1:
        # every permutation group gets its own levels 1..n_p - 1 (shapes.not_levels_per_group): the narrowest bounds them
        raise ConfigError("not_experiment.levels", f"{levels} NoT levels do not fit the narrowest permutation group "
                          f"(hidden layer or channels) of {narrowest} units (at most {narrowest - 1})")
    indices = cfg["not_experiment"].get("level_indices")
    if indices is not None and (list(indices) != sorted(indices) or indices[-1] >= levels):
        raise ConfigError("not_experiment.level_indices", f"{list(indices)} must be increasing positions in the grid of "
                          f"{levels} levels (0..{levels - 1})")
    compact = posterior["compact"]
    if compact["vi_activation_draws"] > 0 and compact["matching"] != "activation":
        raise ConfigError("posterior.compact.vi_activation_draws",
                          f"aligning VI by the activations of {compact['vi_activation_draws']} draws needs "
                          f"posterior.compact.matching: activation (it is {compact['matching']}); set 0 to align q's mean")
    if cfg["not_experiment"]["lambdas"] % 2 == 0 and cfg["figures"]["barrier"] == "midpoint":
        raise ConfigError("not_experiment.lambdas", "the midpoint barrier needs an odd number of lambdas (lambda = 0.5 on the grid)")
    unknown = sorted(set(cfg["claims"].get("skip", [])) - set(CLAIM_IDS))
    if unknown:
        raise ConfigError("claims.skip", f"unknown claim id(s) {', '.join(unknown)}{_suggest(unknown[0], CLAIM_IDS)}",
                          f"known: {', '.join(CLAIM_IDS)}")


def check_config(cfg: dict, schema: dict | None = None) -> dict:
    """Refuse a bad config by key, in the message's first line; fill in the schema's defaults in place."""
    if not isinstance(cfg, dict):
        raise ConfigError("file (merged)", f"is a {type(cfg).__name__}, not keys")
    check_finite(cfg)
    check_schema(cfg, load_schema() if schema is None else schema)
    check_semantics(cfg)
    return cfg


# ---------------------------------------------------------------------------------------------
# Where the outputs go


def check_results_writable(directory: str | os.PathLike) -> None:
    """Refuse, in one line naming it, a results directory that cannot be created or written."""
    directory = Path(directory)
    existing = next(p for p in (directory, *directory.parents) if p.exists() or p == Path(p.anchor or "."))
    if not existing.is_dir():
        raise ConfigError("name", f"{directory} cannot be created: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError("name", f"{directory} cannot be written: {existing} is read-only for this user (or its file system is)")


def stale_lock_note(workdir: str | os.PathLike = ".") -> str | None:
    """A note when .snakemake/locks holds locks but no other Snakemake process runs in ``workdir``.

    Snakemake removes its locks when it ends; a run killed by kill -9 or a power loss leaves them,
    and the next run that wants the same files is refused until ``--unlock``. Linux only (/proc);
    elsewhere None.
    """
    workdir = Path(workdir).resolve()
    locks = sorted((workdir / ".snakemake" / "locks").glob("*.lock"))
    if not locks or not Path("/proc/self").exists() or _other_snakemake_in(workdir):
        return None
    return (f"note: {workdir / '.snakemake' / 'locks'} holds the lock of a Snakemake run that no longer runs "
            "(killed, or a power loss). If Snakemake now says 'Directory cannot be locked', run the same "
            "command once with --unlock added, then again without it: finished outputs and HMC checkpoints are kept.")


def stale_checkpoints_note(hmc_dir: str | os.PathLike, current: str, sampler: str = "HMC") -> str | None:
    """A note naming the checkpoints of ``sampler``'s chains under ``hmc_dir`` (HMC's, or SG-MCMC's) other than the
    current config's (named ``current``).

    A chain resumes only from the checkpoint of its current sampling config; those of earlier
    configs (changed, or failed and abandoned: up to 1.6 GB per chain at the paper's scale) stay
    until removed, in case the config changes back.
    """
    stale = sorted(p for p in Path(hmc_dir).glob("chain*/checkpoint-*") if p.is_dir() and p.name != current)
    if not stale:
        return None
    sizes = [sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) for p in stale]
    listed = ", ".join(f"{p} ({size / 1e6:,.0f} MB)" for p, size in zip(stale, sizes))
    return (f"note: {sampler} checkpoints of earlier sampling configs, not resumed by this one: {listed}. "
            f"Remove them (rm -r {' '.join(map(str, stale))}) unless you will return to those configs.")


def _other_snakemake_in(workdir: Path) -> bool:
    """Whether another process of this user runs Snakemake with ``workdir`` as its working directory."""
    own = {os.getpid(), os.getppid()}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) in own:
            continue
        try:
            command = (proc / "cmdline").read_bytes()
            if b"snakemake" in command and Path(os.readlink(proc / "cwd")).resolve() == workdir:
                return True
        except OSError:  # ended meanwhile, or another user's process
            continue
    return False


def main(argv: list[str]) -> int:
    """Check config files as Snakemake would merge them: python workflow/scripts/config_checks.py presets/quick.yaml."""
    try:
        cfg = read_config_file(REPOSITORY / "config.yaml")
        for path in argv:
            merge(cfg, read_config_file(path))
        check_config(cfg)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"config {cfg['name']}: valid")
    return 0


def merge(base: dict, override: dict) -> None:
    """Snakemake's update_config: nested mappings merged key by key, everything else replaced."""
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
