# compactbnn: the paper's every figure and table from one command.
#   snakemake --cores 2 --configfile presets/quick.yaml     (CPU, minutes)
#   snakemake --cores 4                                      (the paper, config.yaml; a GPU helps)
# Outputs of a config named N live under results/N/.
import sys

from snakemake.utils import min_version

min_version("9.0")

# Config checks need Snakemake alone (compactbnn.config: no numpy, no JAX), so the workflow parses in any
# Snakemake env; src/ on the path, so that it runs this repository's code whether or not compactbnn is installed.
sys.path.insert(0, f"{workflow.basedir}/src")
from compactbnn.config import checks as config_checks
from compactbnn.config import compile_cache, interpreter

# Snakemake runs every script: job as the shell command `<sys.executable> <script>` without quoting the
# interpreter (snakemake/snakemake#2645): from a checkout or venv under a path with a space, ' or &, each
# job would fail with exit status 127 and no reason. Give it the same Python by a link of a safe name
# (compactbnn.config.interpreter), or stop here, in one line naming the path, if none can be made.
try:
    sys.executable = interpreter.shell_safe_python(sys.executable)
except interpreter.PathError as error:
    sys.exit(str(error))

# A bad config stops here, before any job, with one first line naming the key (or the file).
try:
    config_checks.read_config_file(f"{workflow.basedir}/config.yaml")
except config_checks.ConfigError as error:
    sys.exit(str(error))


configfile: "config.yaml"


try:
    config_checks.check_config(config)
    config_checks.check_results_writable(f"results/{config['name']}")
except config_checks.ConfigError as error:
    sys.exit(str(error))
# Jobs of the same shapes (Experiment A's runs, HMC's chains, a job run again) read the XLA programs that an
# earlier job compiled instead of compiling them again: through JAX's environment variables, which every job
# inherits (compactbnn.config.compile_cache).
if config["compilation_cache"]:
    compile_cache.use(config["compilation_cache"])
if workflow.is_main_process and "--unlock" not in sys.argv:
    note = config_checks.stale_lock_note()
    if note:
        print(note, file=sys.stderr)


# the front page of `snakemake --report`: what the workflow does and where each result lives
report: "workflow/report/workflow.rst"


wildcard_constraints:
    run=r"\d+",
    chain=r"\d+",


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/training.smk"
include: "workflow/rules/permutation.smk"
include: "workflow/rules/posterior.smk"
include: "workflow/rules/compact.smk"
include: "workflow/rules/figures.smk"


rule all:
    default_target: True
    input:
        final_targets(),
