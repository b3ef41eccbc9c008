# What each notebook's job reads and writes, from which workflow/rules/figures.smk generates one rule
# per notebook. Functions and data only (no rules): Snakemake's lint wants them apart from the rules.
import shlex
from dataclasses import dataclass


@dataclass(frozen=True)
class Table:
    """A notebook parameter naming one of this run's tables, results/N/data/<name>: an input of its job."""

    name: str


@dataclass(frozen=True)
class NotebookJob:
    """What one notebook's job reads and writes; figures.smk makes each job's rule from it, one shape for all.

    parameters: the notebook's parameters besides its outputs, in papermill's order: a Table is an input
    (a new table reruns the job), any other value is a config value (a param: a changed value reruns it).
    writes: the outputs, each passed to the notebook as the parameter of that name (its file extension).
    """

    doc: str
    parameters: dict
    category: str = "Figures"
    subcategory: str | None = None
    folder: str = "figures"
    writes: tuple = ("pdf", "png")
    shown: tuple = ("png",)  # the outputs the report shows
    code: tuple = ()  # library code the notebook calls besides FIGURE_CODE

    def inputs(self):
        return {
            key: f"{R}/data/{value.name}"
            for key, value in self.parameters.items()
            if isinstance(value, Table)
        }

    def params(self):
        return {
            key: value
            for key, value in self.parameters.items()
            if not isinstance(value, Table)
        }

    def outputs(self, name):
        """Each output by its name (its extension); those the report shows carry the notebook's caption."""
        shown = dict(
            caption=f"../report/{name}.rst",
            category=self.category,
            subcategory=self.subcategory,
        )
        paths = {ext: f"{R}/{self.folder}/{name}.{ext}" for ext in self.writes}
        return {
            ext: report(path, **shown) if ext in self.shown else path
            for ext, path in paths.items()
        }

    def arguments(self, name):
        """The notebook's papermill parameters (-p key value), every value quoted: paths and config values may hold spaces.

        Formatted here, as each notebook's job is defined, and not in the shell command, which Snakemake
        formats only when the job runs, when the loop variable of figures.smk names the last notebook.
        """
        given = {
            key: f"{R}/data/{value.name}" if isinstance(value, Table) else value
            for key, value in self.parameters.items()
        }
        written = {ext: f"{R}/{self.folder}/{name}.{ext}" for ext in self.writes}
        return " ".join(
            f"-p {key} {shlex.quote(str(value))}"
            for key, value in {**given, **written}.items()
        )


SPLIT = config["figures"]["loss_split"]
BARRIER = config["figures"]["barrier"]

# Every notebook's job, named after its notebook (notebooks/<name>.ipynb).
NOTEBOOK_JOBS = {
    "figure1": NotebookJob(
        "Figure 1: loss over (epoch, lambda) before and after rebasin.",
        {"interpolation_csv": Table("interpolation.csv"), "split": SPLIT},
    ),
    "figure2": NotebookJob(
        "Figure 2: NoT, distance and barrier against NoT at initialisation; NoT along the interpolation path.",
        {
            "not_experiment_csv": Table("not_experiment.csv"),
            "interpolation_csv": Table("interpolation.csv"),
            "split": SPLIT,
            "barrier": BARRIER,
        },
    ),
    "figure3": NotebookJob(
        "Figure 3: sigma histograms before and after rebasin, and the pruning curves.",
        {
            "sigma_csv": Table("sigma_values.csv.gz"),
            "sigma_bins": config["posterior"]["compact"]["sigma_bins"],
            "pruning_csv": Table("pruning.csv"),
        },
        # the notebook bins the sigmas with posterior.sigma_histograms (also named in experiments)
        code=(
            "src/compactbnn/paper/experiments.py",
            "src/compactbnn/paper/posterior.py",
        ),
    ),
    "figure4": NotebookJob(
        "Figure 4 (beyond the paper): one weight space for HMC, the ensemble, VI and SG-MCMC, per-weight mu and sigma before and after rebasin.",
        {
            "values_csv": Table("weight_space_values.csv.gz"),
            "correlations_csv": Table("weight_space.csv"),
        },
    ),
    "figure_s1": NotebookJob(
        "Figure S1: Experiments A and B, the authors' other measures (error barriers, per-layer distances, final accuracies, error along lambda).",
        {
            "not_experiment_csv": Table("not_experiment.csv"),
            "interpolation_csv": Table("interpolation.csv"),
            "split": SPLIT,
            "barrier": BARRIER,
        },
        category="Supplementary figures",
    ),
    "figure_s2": NotebookJob(
        "Figure S2: HMC's running predictive, test accuracy and NLL of the first n kept samples.",
        {"running_csv": Table("hmc_running_predictive.csv")},
        category="Supplementary figures",
    ),
    "table1": NotebookJob(
        "Table 1: agreement and total variation with HMC, test accuracies of samples and of the mean weights.",
        {"metrics_csv": Table("posterior_metrics.csv")},
        category="Tables",
        subcategory="Table 1",
        folder="tables",
        writes=("csv", "md", "tex", "html"),
        shown=("csv", "md", "tex", "html"),  # the report shows the HTML inline
    ),
}
