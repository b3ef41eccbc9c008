# Every figure and table of the paper, rendered by a parameterised notebook (papermill) from the
# tidy CSV tables alone; the executed notebooks are kept under results/<name>/notebooks/.
# Changing a notebook reruns only that notebook's job; changing the plot code (FIGURE_CODE) reruns
# every figure and table, as their notebooks call it. What each notebook reads and writes is one entry
# of NOTEBOOK_JOBS (notebooks.smk); the rules below are made from it, one per notebook.

# The plotting code behind every notebook: inputs, so that an edit reruns the figures.
FIGURE_CODE = [
    "src/compactbnn/paper/figures.py",
    "src/compactbnn/paper/legends.py",
    "src/compactbnn/paper/printed_numbers.py",
]


include: "notebooks.smk"


# One rule per notebook, so that editing a notebook reruns only its job; each is named after its
# notebook (not one rule with a {figure} wildcard: the job names figure1 ... table1 are what the cost
# model, the tests and the README count). They are seconds-long: localrule, as a cluster would only
# queue them.
for notebook, job in NOTEBOOK_JOBS.items():

    rule:
        name:
            notebook
        input:
            **job.inputs(),
            notebook=f"notebooks/{notebook}.ipynb",
            code=[*FIGURE_CODE, *job.code],
        output:
            **job.outputs(notebook),
            notebook=f"{R}/notebooks/{notebook}.ipynb",
        log:
            f"{R}/logs/{notebook}.log",
        localrule: True
        conda:
            CONDA_ENV
        params:
            **job.params(),
            python=notebook_python(),
            arguments=job.arguments(notebook),
        shell:
            "{params.python} -m papermill --cwd . {input.notebook:q} {output.notebook:q} {params.arguments}"
            " > {log:q} 2>&1"

    # a rule's docstring (shown by --list-rules) must be a literal; this one is the table's
    workflow.get_rule(notebook).docstring = job.doc


# Seconds-long jobs run where Snakemake runs: a cluster would only queue them.
localrules:
    claims,
    claims_html,


rule claims:
    """Every claim of the paper checked against this run's tables: claims.json and claims.md."""
    input:
        not_experiment=f"{R}/data/not_experiment.csv",
        interpolation=f"{R}/data/interpolation.csv",
        metrics=f"{R}/data/posterior_metrics.csv",
        sigma=f"{R}/data/sigma.csv",
        pruning=f"{R}/data/pruning.csv",
        rhat=f"{R}/compact/rhat.json",
        weight_space=f"{R}/data/weight_space.csv",
        sgmcmc_rhat=f"{R}/compact/sgmcmc_rhat.json",
    output:
        json=f"{R}/claims.json",
        md=report(f"{R}/claims.md", caption="../report/claims.rst", category="Claims"),
        reproduction=f"{R}/data/reproduction.csv",
    log:
        f"{R}/logs/claims.log",
    conda:
        CONDA_ENV
    params:
        name=config["name"],
        claims=config["claims"],
        barrier=config["figures"]["barrier"],
        split=config["figures"]["loss_split"],
        perm_widths=perm_widths(config),
        prior_sd=config["posterior"]["prior_sd"],
    script:
        "../scripts/claims.py"


rule claims_html:
    """claims.json as an HTML table, which the report shows inline."""
    input:
        json=f"{R}/claims.json",
    output:
        html=report(
            f"{R}/claims.html", caption="../report/claims.rst", category="Claims"
        ),
    log:
        f"{R}/logs/claims_html.log",
    conda:
        CONDA_ENV
    params:
        name=config["name"],
    script:
        "../scripts/claims_html.py"
