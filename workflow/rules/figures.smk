# Every figure and table of the paper, rendered by a parameterised notebook (papermill) from the
# tidy CSV tables alone; the executed notebooks are kept under results/<name>/notebooks/.
# Changing a notebook reruns only that notebook's job; changing the plot code (FIGURE_CODE) reruns
# every figure and table, as their notebooks call it.

# The plotting code behind every notebook: inputs, so that an edit reruns the figures.
FIGURE_CODE = ["src/compactbnn/paper/figures.py", "src/compactbnn/paper/printed_numbers.py"]


# Seconds-long jobs run where Snakemake runs: a cluster would only queue them.
localrules:
    figure1,
    figure2,
    figure3,
    table1,
    claims,
    claims_html,


rule figure1:
    """Figure 1: loss over (epoch, lambda) before and after rebasin."""
    input:
        notebook="notebooks/figure1.ipynb",
        code=FIGURE_CODE,
        interpolation=f"{R}/data/interpolation.csv",
    output:
        pdf=f"{R}/figures/figure1.pdf",
        png=report(
            f"{R}/figures/figure1.png",
            caption="../report/figure1.rst",
            category="Figures",
        ),
        notebook=f"{R}/notebooks/figure1.ipynb",
    log:
        f"{R}/logs/figure1.log",
    conda:
        CONDA_ENV
    params:
        python=notebook_python(),
        split=config["figures"]["loss_split"],
    shell:
        "{params.python} -m papermill --cwd . {input.notebook:q} {output.notebook:q}"
        " -p interpolation_csv {input.interpolation:q} -p split {params.split}"
        " -p pdf {output.pdf:q} -p png {output.png:q} > {log:q} 2>&1"


rule figure2:
    """Figure 2: NoT, distance and barrier against NoT at initialisation; NoT along the interpolation path."""
    input:
        notebook="notebooks/figure2.ipynb",
        code=FIGURE_CODE,
        not_experiment=f"{R}/data/not_experiment.csv",
        interpolation=f"{R}/data/interpolation.csv",
    output:
        pdf=f"{R}/figures/figure2.pdf",
        png=report(
            f"{R}/figures/figure2.png",
            caption="../report/figure2.rst",
            category="Figures",
        ),
        notebook=f"{R}/notebooks/figure2.ipynb",
    log:
        f"{R}/logs/figure2.log",
    conda:
        CONDA_ENV
    params:
        python=notebook_python(),
        split=config["figures"]["loss_split"],
        barrier=config["figures"]["barrier"],
    shell:
        "{params.python} -m papermill --cwd . {input.notebook:q} {output.notebook:q}"
        " -p not_experiment_csv {input.not_experiment:q} -p interpolation_csv {input.interpolation:q}"
        " -p split {params.split} -p barrier {params.barrier}"
        " -p pdf {output.pdf:q} -p png {output.png:q} > {log:q} 2>&1"


rule figure3:
    """Figure 3: sigma histograms before and after rebasin, and the pruning curves."""
    input:
        notebook="notebooks/figure3.ipynb",
        # the notebook bins the sigmas with experiments.sigma_histograms
        code=[*FIGURE_CODE, "src/compactbnn/paper/experiments.py"],
        sigma=f"{R}/data/sigma_values.csv.gz",
        pruning=f"{R}/data/pruning.csv",
    output:
        pdf=f"{R}/figures/figure3.pdf",
        png=report(
            f"{R}/figures/figure3.png",
            caption="../report/figure3.rst",
            category="Figures",
        ),
        notebook=f"{R}/notebooks/figure3.ipynb",
    log:
        f"{R}/logs/figure3.log",
    conda:
        CONDA_ENV
    params:
        python=notebook_python(),
        sigma_bins=config["posterior"]["compact"]["sigma_bins"],
    shell:
        "{params.python} -m papermill --cwd . {input.notebook:q} {output.notebook:q}"
        " -p sigma_csv {input.sigma:q} -p sigma_bins {params.sigma_bins} -p pruning_csv {input.pruning:q}"
        " -p pdf {output.pdf:q} -p png {output.png:q} > {log:q} 2>&1"


rule figure4:
    """Figure 4 (beyond the paper): one weight space for HMC, the ensemble and VI, per-weight mu and sigma before and after rebasin."""
    input:
        notebook="notebooks/figure4.ipynb",
        code=FIGURE_CODE,
        values=f"{R}/data/weight_space_values.csv.gz",
        correlations=f"{R}/data/weight_space.csv",
    output:
        pdf=f"{R}/figures/figure4.pdf",
        png=report(
            f"{R}/figures/figure4.png",
            caption="../report/figure4.rst",
            category="Figures",
        ),
        notebook=f"{R}/notebooks/figure4.ipynb",
    log:
        f"{R}/logs/figure4.log",
    conda:
        CONDA_ENV
    params:
        python=notebook_python(),
    shell:
        "{params.python} -m papermill --cwd . {input.notebook:q} {output.notebook:q}"
        " -p values_csv {input.values:q} -p correlations_csv {input.correlations:q}"
        " -p pdf {output.pdf:q} -p png {output.png:q} > {log:q} 2>&1"


rule figure_s1:
    """Figure S1: Experiments A and B, the authors' other measures (error barriers, per-layer distances, final accuracies, error along lambda)."""
    input:
        notebook="notebooks/figure_s1.ipynb",
        code=FIGURE_CODE,
        not_experiment=f"{R}/data/not_experiment.csv",
        interpolation=f"{R}/data/interpolation.csv",
    output:
        pdf=f"{R}/figures/figure_s1.pdf",
        png=report(
            f"{R}/figures/figure_s1.png",
            caption="../report/figure_s1.rst",
            category="Supplementary figures",
        ),
        notebook=f"{R}/notebooks/figure_s1.ipynb",
    log:
        f"{R}/logs/figure_s1.log",
    conda:
        CONDA_ENV
    params:
        python=notebook_python(),
        split=config["figures"]["loss_split"],
        barrier=config["figures"]["barrier"],
    shell:
        "{params.python} -m papermill --cwd . {input.notebook:q} {output.notebook:q}"
        " -p not_experiment_csv {input.not_experiment:q} -p interpolation_csv {input.interpolation:q}"
        " -p split {params.split} -p barrier {params.barrier}"
        " -p pdf {output.pdf:q} -p png {output.png:q} > {log:q} 2>&1"


rule figure_s2:
    """Figure S2: HMC's running predictive, test accuracy and NLL of the first n kept samples."""
    input:
        notebook="notebooks/figure_s2.ipynb",
        code=FIGURE_CODE,
        running=f"{R}/data/hmc_running_predictive.csv",
    output:
        pdf=f"{R}/figures/figure_s2.pdf",
        png=report(
            f"{R}/figures/figure_s2.png",
            caption="../report/figure_s2.rst",
            category="Supplementary figures",
        ),
        notebook=f"{R}/notebooks/figure_s2.ipynb",
    log:
        f"{R}/logs/figure_s2.log",
    conda:
        CONDA_ENV
    params:
        python=notebook_python(),
    shell:
        "{params.python} -m papermill --cwd . {input.notebook:q} {output.notebook:q}"
        " -p running_csv {input.running:q}"
        " -p pdf {output.pdf:q} -p png {output.png:q} > {log:q} 2>&1"


rule table1:
    """Table 1: agreement and total variation with HMC, test accuracies of samples and of the mean weights."""
    input:
        notebook="notebooks/table1.ipynb",
        code=FIGURE_CODE,
        metrics=f"{R}/data/posterior_metrics.csv",
    output:
        csv=report(
            f"{R}/tables/table1.csv",
            caption="../report/table1.rst",
            category="Tables",
            subcategory="Table 1",
        ),
        md=report(
            f"{R}/tables/table1.md",
            caption="../report/table1.rst",
            category="Tables",
            subcategory="Table 1",
        ),
        tex=report(
            f"{R}/tables/table1.tex",
            caption="../report/table1.rst",
            category="Tables",
            subcategory="Table 1",
        ),
        # the report shows HTML inline
        html=report(
            f"{R}/tables/table1.html",
            caption="../report/table1.rst",
            category="Tables",
            subcategory="Table 1",
        ),
        notebook=f"{R}/notebooks/table1.ipynb",
    log:
        f"{R}/logs/table1.log",
    conda:
        CONDA_ENV
    params:
        python=notebook_python(),
    shell:
        "{params.python} -m papermill --cwd . {input.notebook:q} {output.notebook:q}"
        " -p metrics_csv {input.metrics:q} -p csv {output.csv:q} -p md {output.md:q} -p tex {output.tex:q}"
        " -p html {output.html:q} > {log:q} 2>&1"


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
        hidden=config["model"]["hidden"],
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
