"""The paper's figures and Table 1, drawn from the tidy CSV tables the workflow writes.

Every function takes DataFrames (never arrays or networks) and returns a matplotlib figure or
tables, so a figure can be redrawn from cached data alone. Colours follow the paper: blue for
initialisation / q_d, green for trained / q_r, purple for the control, black for VI.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: the workflow renders files, never windows

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from compactbnn import paper  # noqa: E402

CURVE_COLOURS = {"init": "tab:blue", "trained": "tab:green", "control": "tab:purple"}
CURVE_LABELS = {"init": "at initialisation", "trained": "both trained", "control": "trained, aligned by known P"}
REPRESENTATION_COLOURS = {"q_d": "tab:blue", "q_r": "tab:green", "q": "black"}
PRUNING_STYLE = {
    "hmc_mu_r": ("HMC $\\mu_r$ by HMC $\\sigma_r$", "tab:green", "-"),
    "hmc_mu_d": ("HMC $\\mu_d$ by $\\sigma_d$", "tab:blue", "-"),
    "ensemble_mu_r": ("Ens. $\\mu_r$ by Ens. $\\sigma_r$", "tab:orange", "-"),
    "ensemble_mu_d": ("Ens. $\\mu_d$ by Ens. $\\sigma_d$", "tab:orange", ":"),
    "merged": ("Ens. $\\mu_r$ by HMC $\\sigma_r$ (merged)", "tab:red", "-"),
    "vi": ("VI $\\mu$ by VI $\\sigma$", "black", "-"),
}


def _heatmap(ax, table: pd.DataFrame, value: str, norm, cmap: str):
    grid = table.pivot_table(index="epoch", columns="lambda", values=value)
    mesh = ax.pcolormesh(grid.columns.to_numpy(), grid.index.to_numpy(), grid.to_numpy(), norm=norm, cmap=cmap,
                         shading="nearest")
    ax.set_xlabel("$\\lambda$")
    ax.set_ylabel("epoch")
    return mesh


def figure1(interpolation: pd.DataFrame, split: str = "train") -> plt.Figure:
    """Loss over (epoch, lambda) along W_lambda = (1 - lambda) W0 + lambda W1, before and after rebasin."""
    table = interpolation[interpolation["split"] == split]
    # a log scale: the untrained epoch 0 (loss ~2.3) would otherwise wash out the ridge
    norm = matplotlib.colors.LogNorm(vmin=table["loss"].min(), vmax=table["loss"].max())
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True, constrained_layout=True)
    for ax, when in zip(axes, ("before", "after")):
        mesh = _heatmap(ax, table[table["rebasin"] == when], "loss", norm, "viridis")
        ax.set_title(f"{when} rebasin")
    axes[1].set_ylabel("")
    fig.colorbar(mesh, ax=axes, label=f"{split} loss")
    fig.suptitle("Loss along the linear interpolation between two networks over training")
    return fig


def _not_panel(ax, table: pd.DataFrame, value: str, ylabel: str):
    for curve in ("init", "trained", "control"):
        part = table[table["curve"] == curve]
        if part.empty:
            continue
        sns.lineplot(data=part, x="not_init", y=value, errorbar="sd", ax=ax, color=CURVE_COLOURS[curve],
                     label=CURVE_LABELS[curve])
    ax.set_xlabel("NoT(P) at initialisation")
    ax.set_ylabel(ylabel)


def figure2(not_experiment: pd.DataFrame, interpolation: pd.DataFrame, barrier: str = "max",
            split: str = "train") -> plt.Figure:
    """(a) NoT(P') vs NoT(P), (b) squared distance, (c) loss barrier, each +-1 sd over runs; (d) NoT along lambda."""
    fig = plt.figure(figsize=(22, 4.4), constrained_layout=True)
    grid = fig.add_gridspec(1, 5)
    ax_a, ax_b, ax_c = (fig.add_subplot(grid[0, i]) for i in range(3))
    _not_panel(ax_a, not_experiment, "not_measured", "NoT(P') after rebasin")
    top = not_experiment["not_init"].max()
    ax_a.plot([0, top], [0, top], color="grey", lw=0.8, ls="--", label="y = x")
    ax_a.legend(fontsize=8)
    ax_a.set_title("(a) NoT is stable under training")
    _not_panel(ax_b, not_experiment, "distance", "$\\|W_0 - W_1\\|^2$")
    ax_b.set_title("(b) squared L2 distance")
    ax_b.get_legend().remove()
    column = "barrier" if barrier == "max" else "barrier_midpoint"
    where = "max over $\\lambda$" if barrier == "max" else "$\\lambda$ = 0.5"
    _not_panel(ax_c, not_experiment, column, f"loss barrier ({where})")
    ax_c.set_title("(c) loss barrier")
    ax_c.get_legend().remove()
    table = interpolation[interpolation["split"] == split]
    norm = matplotlib.colors.Normalize(vmin=0, vmax=max(1, table["not_to_w0"].max()))
    axes_d = [fig.add_subplot(grid[0, 3]), fig.add_subplot(grid[0, 4])]
    for ax, when in zip(axes_d, ("before", "after")):
        mesh = _heatmap(ax, table[table["rebasin"] == when], "not_to_w0", norm, "magma")
        ax.set_title(f"(d) NoT($W_\\lambda$, $W_0$), {when} rebasin")
    fig.colorbar(mesh, ax=axes_d, label="NoT to $W_0$")
    return fig


def figure3(sigma: pd.DataFrame, pruning: pd.DataFrame) -> plt.Figure:
    """Left: histograms (log counts) of sigma_d, sigma_r and VI's sigma. Right: accuracy vs parameters retained."""
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.2), constrained_layout=True)
    titles = {"hmc": "HMC", "ensemble": "Deep ensemble", "vi": "Mean-field VI"}
    for ax, method in zip(axes[:3], ("hmc", "ensemble", "vi")):
        for representation, part in sigma[sigma["method"] == method].groupby("representation"):
            edges = np.append(part["bin_left"].to_numpy(), part["bin_right"].to_numpy()[-1])
            label = {"q_d": "$\\sigma_d$ (direct)", "q_r": "$\\sigma_r$ (rebasin)", "q": "$\\sigma$"}[representation]
            ax.stairs(part["count"].to_numpy(), edges, color=REPRESENTATION_COLOURS[representation], label=label)
        ax.set_yscale("log")
        ax.set_xlabel("$\\sigma$")
        ax.set_ylabel("count")
        ax.set_title(titles[method])
        ax.legend(fontsize=8)
    ax = axes[3]
    for curve, part in pruning.groupby("curve", sort=False):
        label, colour, style = PRUNING_STYLE[curve]
        ax.plot(part["retained_percent"], 100 * part["accuracy"], marker="o", ms=3, color=colour, ls=style, label=label)
    ax.invert_xaxis()
    ax.set_xlabel("parameters retained (%)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Pruning the parameters with the largest $\\sigma$")
    ax.legend(fontsize=7)
    return fig


TABLE1_COLUMNS = ["method", "representation", "agreement", "tv", "accuracy_samples", "accuracy_mean"]


def table1(posterior_metrics: pd.DataFrame) -> pd.DataFrame:
    """Table 1 in the issue's columns; accuracies in percent as the paper prints them."""
    table = posterior_metrics[TABLE1_COLUMNS].copy()
    table[["accuracy_samples", "accuracy_mean"]] *= 100
    return table


def table1_markdown(table: pd.DataFrame) -> str:
    """Table 1 as Markdown with the paper's printed value beside each of ours ("ours (paper)")."""
    def cell(value, printed, digits):
        ours = "N/A" if pd.isna(value) else f"{value:.{digits}f}"
        return f"{ours} ({'N/A' if printed is None else f'{printed:.{digits}f}'})"

    lines = ["| method | representation | agreement with HMC | TV to HMC | test accuracy % of samples | test accuracy % of mean |",
             "|---|---|---|---|---|---|"]
    for row in table.itertuples(index=False):
        printed = paper.TABLE1.get((row.method, row.representation), (None,) * 4)
        lines.append(f"| {row.method} | {row.representation} | {cell(row.agreement, printed[0], 4)} | "
                     f"{cell(row.tv, printed[1], 4)} | {cell(row.accuracy_samples, printed[2], 2)} | "
                     f"{cell(row.accuracy_mean, printed[3], 2)} |")
    return "\n".join(lines) + "\n\nEach cell: this run (the paper's printed value).\n"


def table1_latex(table: pd.DataFrame) -> str:
    """Table 1 as a LaTeX tabular (booktabs)."""
    def cell(value, digits):
        return "N/A" if pd.isna(value) else f"{value:.{digits}f}"

    lines = ["\\begin{tabular}{llrrrr}", "\\toprule",
             "Method & Representation & Agreement $\\uparrow$ & TV $\\downarrow$ & Acc.\\ samples (\\%) & Acc.\\ $\\mu$ (\\%) \\\\",
             "\\midrule"]
    for row in table.itertuples(index=False):
        representation = row.representation.replace("_", "\\_")
        lines.append(f"{row.method} & {representation} & {cell(row.agreement, 4)} & {cell(row.tv, 4)} & "
                     f"{cell(row.accuracy_samples, 2)} & {cell(row.accuracy_mean, 2)} \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"
