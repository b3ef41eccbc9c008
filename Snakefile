# compactbnn: the paper's every figure and table from one command.
#   snakemake --cores 2 --configfile presets/quick.yaml     (CPU, minutes)
#   snakemake --cores 4                                      (the paper, config.yaml; a GPU helps)
# Outputs of a config named N live under results/N/.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


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
