"""The paper's figures and Table 1, drawn from the tidy CSV tables the workflow writes.

Every function takes DataFrames (never arrays or networks) and returns a matplotlib figure or
tables, so a figure can be redrawn from cached data alone. Colours follow the paper: blue for
initialisation / q_d, green for trained / q_r, purple for the control, black for VI. Every mark
is labelled and named in a legend placed outside every axes (``legends``), so none hides a curve.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: the workflow renders files, never windows

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from compactbnn.paper import legends, printed_numbers  # noqa: E402

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
    # the authors' further curves (MNIST_eval_pruning.py), dashed: one network, or another sigma
    "hmc_last_sample": ("last HMC sample (unaligned) by HMC $\\sigma_r$", "tab:green", "--"),
    "ensemble_last_member": ("last member (unaligned) by Ens. $\\sigma_r$", "tab:orange", "--"),
    "ensemble_mu_r_by_vi": ("Ens. $\\mu_r$ by VI $\\sigma$", "tab:gray", "--"),
    # beyond the paper: cyclical SG-MCMC's own curves
    "sgmcmc_mu_r": ("SG-MCMC $\\mu_r$ by its $\\sigma_r$", "tab:brown", "-"),
    "sgmcmc_mu_d": ("SG-MCMC $\\mu_d$ by its $\\sigma_d$", "tab:brown", ":"),
}
SIGMA_PANELS = {"hmc": "HMC", "ensemble": "Deep ensemble", "vi": "Mean-field VI", "sgmcmc": "Cyclical SG-MCMC (ours)"}


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
                     label=CURVE_LABELS[curve], err_kws={"label": legends.SD_BAND})
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
    ax_a.plot([0, top], [0, top], color="grey", lw=0.8, ls="--", label="y = x (panel a)")
    ax_a.set_title("(a) NoT is stable under training")
    _not_panel(ax_b, not_experiment, "distance", "$\\|W_0 - W_1\\|^2$")
    ax_b.set_title("(b) squared L2 distance")
    column = "barrier" if barrier == "max" else "barrier_midpoint"
    where = "max over $\\lambda$" if barrier == "max" else "$\\lambda$ = 0.5"
    _not_panel(ax_c, not_experiment, column, f"loss barrier ({where})")
    ax_c.set_title("(c) loss barrier")
    # one legend for (a)-(c), under them: inside (a), another preset's curves could run under it
    legends.under_figure(fig, legends.named_handles([ax_a, ax_b, ax_c]), ncol=5, where="left")
    table = interpolation[interpolation["split"] == split]
    norm = matplotlib.colors.Normalize(vmin=0, vmax=max(1, table["not_to_w0"].max()))
    axes_d = [fig.add_subplot(grid[0, 3]), fig.add_subplot(grid[0, 4])]
    for ax, when in zip(axes_d, ("before", "after")):
        mesh = _heatmap(ax, table[table["rebasin"] == when], "not_to_w0", norm, "magma")
        ax.set_title(f"(d) NoT($W_\\lambda$, $W_0$), {when} rebasin")
    fig.colorbar(mesh, ax=axes_d, label="NoT to $W_0$")
    return fig


def figure3(sigma: pd.DataFrame, pruning: pd.DataFrame) -> plt.Figure:
    """Left: histograms (log counts) of sigma_d, sigma_r and VI's sigma, one panel per method (SG-MCMC's where the
    table has it). Right: accuracy vs parameters retained."""
    methods = [method for method in SIGMA_PANELS if method in set(sigma["method"])]
    fig, axes = plt.subplots(1, len(methods) + 1, figsize=(5 * (len(methods) + 1), 4.2), constrained_layout=True)
    for ax, method in zip(axes[:-1], methods):
        for representation, part in sigma[sigma["method"] == method].groupby("representation"):
            edges = np.append(part["bin_left"].to_numpy(), part["bin_right"].to_numpy()[-1])
            label = {"q_d": "$\\sigma_d$ (direct)", "q_r": "$\\sigma_r$ (rebasin)", "q": "$\\sigma$"}[representation]
            ax.stairs(part["count"].to_numpy(), edges, color=REPRESENTATION_COLOURS[representation], label=label)
        ax.set_yscale("log")
        ax.set_xlabel("$\\sigma$")
        ax.set_ylabel("count")
        ax.set_title(SIGMA_PANELS[method])
        legends.below(ax, legends.named_handles([ax]), ncol=2, fontsize=8)
    ax = axes[-1]
    for curve, part in pruning.groupby("curve", sort=False):
        label, colour, style = PRUNING_STYLE[curve]
        ax.plot(part["retained_percent"], 100 * part["accuracy"], marker="o", ms=3, color=colour, ls=style, label=label)
    ax.invert_xaxis()
    ax.set_xlabel("parameters retained (%)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Pruning the parameters with the largest $\\sigma$")
    legends.beside(ax, legends.named_handles([ax]))  # inside, it covered the curves at the quick preset
    return fig


TABLE1_COLUMNS = ["method", "representation", "agreement", "tv", "accuracy_samples", "accuracy_mean"]


def table1(posterior_metrics: pd.DataFrame) -> pd.DataFrame:
    """Table 1 in the issue's columns; accuracies in percent as the paper prints them.

    ``agreement_own`` and ``tv_own`` (beyond the paper) ride along where the metrics have them, for
    ``table1_markdown``; write ``table[TABLE1_COLUMNS]`` for the paper's columns alone.
    """
    own = [column for column in ("agreement_own", "tv_own") if column in posterior_metrics]
    table = posterior_metrics[TABLE1_COLUMNS + own].copy()
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
        printed = printed_numbers.TABLE1.get((row.method, row.representation), (None,) * 4)
        lines.append(f"| {row.method} | {row.representation} | {cell(row.agreement, printed[0], 4)} | "
                     f"{cell(row.tv, printed[1], 4)} | {cell(row.accuracy_samples, printed[2], 2)} | "
                     f"{cell(row.accuracy_mean, printed[3], 2)} |")
    return "\n".join(lines) + "\n\nEach cell: this run (the paper's printed value).\n" + own_markdown(table)


def own_markdown(table: pd.DataFrame) -> str:
    """Beyond the paper: each row's agreement and TV against its own method's samples (``agreement_own``, ``tv_own``), where
    the table has them (``table1`` keeps them when posterior_metrics.csv does); empty otherwise."""
    if "agreement_own" not in table or table["agreement_own"].isna().all():
        return ""
    lines = ["", "Against the predictive of each method's own samples (beyond the paper; for HMC the same as above):", "",
             "| method | representation | agreement with own samples | TV to own samples |", "|---|---|---|---|"]
    for row in table.dropna(subset=["agreement_own"]).itertuples(index=False):
        lines.append(f"| {row.method} | {row.representation} | {row.agreement_own:.4f} | {row.tv_own:.4f} |")
    return "\n".join(lines) + "\n"


def table1_html(table: pd.DataFrame) -> str:
    """Table 1 as an HTML page, the paper's printed value beside each of ours (Snakemake's report shows HTML inline)."""
    rows = [line.strip("|").split(" | ") for line in table1_markdown(table[TABLE1_COLUMNS]).splitlines()
            if line.startswith("| ")]
    frame = pd.DataFrame([[cell.strip() for cell in row] for row in rows[1:]], columns=[c.strip() for c in rows[0]])
    own = table.dropna(subset=["agreement_own"]) if "agreement_own" in table else table.iloc[:0]
    own_html = ("<p>Against the predictive of each method's own samples (beyond the paper):</p>\n"
                + own[["method", "representation", "agreement_own", "tv_own"]].to_html(index=False, border=0, float_format="%.4f")
                + "\n") if len(own) else ""
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Table 1</title></head><body>\n"
            + frame.to_html(index=False, border=0) + "\n<p>Each cell: this run (the paper's printed value).</p>\n"
            + own_html + "</body></html>\n")


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


# --------------------------------------------------------------------------- supplementary figures
# The authors' other measures (their scripts compute them; the paper prints none of them).

SPLIT_STYLES = {"train": "-", "test": "--"}
REBASIN_STYLES = {"before": "--", "after": "-"}


def _not_panel_per_split(ax, table: pd.DataFrame, column: str, ylabel: str):
    """``column``_train solid and ``column``_test dashed, for every curve of Experiment A, +-1 sd over runs."""
    for curve in ("init", "trained", "control"):
        part = table[table["curve"] == curve]
        for split, style in SPLIT_STYLES.items():
            if part.empty or f"{column}_{split}" not in part:
                continue
            sns.lineplot(data=part, x="not_init", y=f"{column}_{split}", errorbar="sd", ax=ax, color=CURVE_COLOURS[curve],
                         ls=style, label=f"{CURVE_LABELS[curve]}, {split}", err_kws={"label": legends.SD_BAND})
    ax.set_xlabel("NoT(P) at initialisation")
    ax.set_ylabel(ylabel)


def _layer_columns(table: pd.DataFrame, prefix: str) -> list[str]:
    """The per-layer columns ``prefix`` + w1, b1, w2, ... present in a table, in layer order."""
    names = [c[len(prefix):] for c in table.columns if c.startswith(prefix) and c[len(prefix):][:1] in ("w", "b")
             and c[len(prefix) + 1:].isdigit()]
    return [prefix + n for n in sorted(names, key=lambda n: (int(n[1:]), n[0] == "b"))]


def figure_s1(not_experiment: pd.DataFrame, interpolation: pd.DataFrame, barrier: str = "max",
              split: str = "train") -> plt.Figure:
    """Experiments A and B, the authors' other measures.

    Top (Experiment A, +-1 sd over runs): (a) loss and (b) 0-1 error barriers on train (solid)
    and test (dashed); (c) squared distance per weight matrix and bias; (d) final accuracy of
    the trained networks. Bottom (Experiment B): (e, f) error along lambda over epochs before
    and after rebasin; (g) ||W1 - W0|| per layer over epochs; (h) error along lambda at the last epoch.
    """
    # taller than the 22 x 9 it was when the legends sat inside the panels, which they now sit under
    fig, axes = plt.subplots(2, 4, figsize=(22, 10.5), constrained_layout=True)
    midpoint = "" if barrier == "max" else "_midpoint"
    where = "max over $\\lambda$" if barrier == "max" else "$\\lambda$ = 0.5"
    ax = axes[0, 0]
    _not_panel_per_split(ax, not_experiment, f"barrier{midpoint}", f"loss barrier ({where})")
    ax.set_title("(a) loss barrier, train and test")
    ax = axes[0, 1]
    _not_panel_per_split(ax, not_experiment, f"error_barrier{midpoint}", f"0-1 error barrier ({where})")
    ax.set_title("(b) error barrier, train and test")
    legends.below(axes[0, 0], legends.named_handles(axes[0, :2]))  # the same curves in (a) and (b)
    ax = axes[0, 2]
    layer_colours = dict(zip(_layer_columns(not_experiment, "distance_"), sns.color_palette("colorblind")))
    for curve, style in (("trained", "-"), ("init", ":")):
        part = not_experiment[not_experiment["curve"] == curve]
        for column, colour in layer_colours.items():
            if not (part[column] > 0).any():  # e.g. the output bias, never permuted: nothing to draw on a log scale
                continue
            sns.lineplot(data=part, x="not_init", y=column, errorbar="sd", ax=ax, color=colour, ls=style,
                         label=f"{column.removeprefix('distance_')}, {CURVE_LABELS[curve]}",
                         err_kws={"label": legends.SD_BAND})
    ax.set_yscale("log")
    ax.set_xlabel("NoT(P) at initialisation")
    ax.set_ylabel("squared distance of the layer's weights")
    ax.set_title("(c) $\\|W_0 - W_1\\|^2$ per weight matrix and bias")
    legends.below(ax, legends.named_handles([ax]))
    ax = axes[0, 3]
    trained = not_experiment[not_experiment["curve"] == "trained"]
    for network, colour in (("first", "tab:green"), ("second", "tab:olive")):
        for data_split, style in SPLIT_STYLES.items():
            sns.lineplot(data=trained, x="not_init", y=trained[f"{network}_accuracy_{data_split}"] * 100, errorbar="sd",
                         ax=ax, color=colour, ls=style, err_kws={"label": legends.SD_BAND},
                         label=f"{'$W_0$' if network == 'first' else '$P W_0$ (trained copy)'}, {data_split}")
    ax.set_xlabel("NoT(P) at initialisation")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("(d) the trained networks' final accuracy")
    legends.below(ax, legends.named_handles([ax]))

    table = interpolation[interpolation["split"] == split].assign(error=lambda t: 1 - t["accuracy"])
    norm = matplotlib.colors.Normalize(vmin=0, vmax=table["error"].max())
    for ax, when in zip(axes[1, :2], ("before", "after")):
        mesh = _heatmap(ax, table[table["rebasin"] == when], "error", norm, "viridis")
        ax.set_title(f"({'e' if when == 'before' else 'f'}) {split} error along $\\lambda$, {when} rebasin")
    fig.colorbar(mesh, ax=axes[1, :2], label=f"{split} error (1 - accuracy)")
    ax = axes[1, 2]
    ends = table[np.isclose(table["lambda"], 1.0)]
    columns = ["l2_to_w0", *_layer_columns(ends, "l2_to_w0_")]
    for column, colour in zip(columns, ["black", *sns.color_palette("colorblind")]):
        for when, style in REBASIN_STYLES.items():
            part = ends[ends["rebasin"] == when]
            ax.plot(part["epoch"], part[column], color=colour, ls=style,
                    label=f"{column.removeprefix('l2_to_w0').removeprefix('_') or 'total'}, {when}")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("$\\|W_1 - W_0\\|$")
    ax.set_title("(g) distance of the two networks, before and after rebasin")
    legends.below(ax, legends.named_handles([ax]))
    ax = axes[1, 3]
    last = interpolation[interpolation["epoch"] == interpolation["epoch"].max()]
    for (when, data_split), part in last.groupby(["rebasin", "split"]):
        ax.plot(part["lambda"], 100 * (1 - part["accuracy"]), marker="o", ms=3, ls=SPLIT_STYLES.get(data_split, "-"),
                color="tab:green" if when == "after" else "tab:blue", label=f"{when} rebasin, {data_split}")
    ax.set_xlabel("$\\lambda$")
    ax.set_ylabel("error (%)")
    ax.set_title(f"(h) error along $\\lambda$ at epoch {int(last['epoch'].max())}")
    legends.below(ax, legends.named_handles([ax]))
    return fig


SAMPLE_DOTS = "dots: the n-th sample alone, in its chain's colour"


def figure_s2(running: pd.DataFrame) -> plt.Figure:
    """HMC's running predictive: test accuracy and NLL of the first n kept samples, each chain and pooled.

    Faint dots: the n-th sample alone. Pooled: the chains interleaved by kept index. One legend
    under both panels names every chain, the pooled curve and the dots.
    """
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), constrained_layout=True)
    chains = [c for c in running["chain"].astype(str).unique() if c != "pooled"]
    colours = dict(zip(chains, sns.color_palette("colorblind", len(chains))))
    for ax, (metric, label, scale) in zip(axes, (("accuracy", "test accuracy (%)", 100), ("nll", "test NLL", 1))):
        for chain, part in running.groupby(running["chain"].astype(str), sort=False):
            pooled = chain == "pooled"
            colour = "black" if pooled else colours[chain]
            ax.plot(part["n"], scale * part[metric], color=colour, lw=2 if pooled else 1,
                    label="pooled (interleaved)" if pooled else f"chain {chain}")
            if not pooled:
                ax.scatter(part["n"], scale * part[f"sample_{metric}"], color=colour, s=4, alpha=0.3,
                           label=SAMPLE_DOTS)
        ax.set_xlabel("kept samples in the average, n")
        ax.set_ylabel(label)
        ax.set_xscale("log")
    axes[0].set_title("(a) accuracy of the predictive of the first n samples")
    axes[1].set_title("(b) NLL of the predictive of the first n samples")
    handles = legends.named_handles(axes, shared=(SAMPLE_DOTS,))
    legends.under_figure(fig, handles, ncol=min(len(handles), 6))
    return fig


# --------------------------------------------------------------------------- Figure 4 (beyond the paper)
METHOD_NAMES = {"hmc": "HMC", "ensemble": "Ens.", "vi": "VI", "sgmcmc": "SG-MCMC"}
QUANTITY_SYMBOLS = {"mu": "\\mu", "sigma": "\\sigma"}


def figure4(values: pd.DataFrame, correlations: pd.DataFrame, gridsize: int = 60) -> plt.Figure:
    """One weight space for HMC, the ensemble, VI (and SG-MCMC): every weight's mu and sigma, one row per method pair.

    Columns: mu before rebasin (each method in its own basis), mu after (all in one reference's
    basis), then sigma before and after; before and after share their axes. Each panel is a hexbin
    of all weights with log counts and the line y = x, titled with the Pearson (r) and Spearman
    (rho) correlations from ``correlations`` (``weight_space.weight_space_correlations``). Every
    panel bins the same weights, so all share one colour scale, named by the colour bar.
    """
    pairs = list(correlations[["method_a", "method_b"]].drop_duplicates().itertuples(index=False, name=None))
    columns = [(quantity, alignment) for quantity in ("mu", "sigma") for alignment in ("before", "after")]
    fig, axes = plt.subplots(len(pairs), len(columns), figsize=(3.6 * len(columns), 3.3 * len(pairs)),
                             constrained_layout=True, squeeze=False)
    hexbins = []
    for row, (a, b) in enumerate(pairs):
        for column, (quantity, alignment) in enumerate(columns):
            ax = axes[row, column]
            both = values[[f"{quantity}_{a}", f"{quantity}_{b}"]].to_numpy()
            low, high = float(both.min()), float(both.max())  # one range for before and after
            part = values[values["alignment"] == alignment]
            hexbins.append(ax.hexbin(part[f"{quantity}_{a}"], part[f"{quantity}_{b}"], gridsize=gridsize, bins="log",
                                     mincnt=1, cmap="viridis", linewidths=0, extent=(low, high, low, high)))
            ax.plot([low, high], [low, high], color="tab:red", lw=0.7, ls=":", label="y = x")
            ax.set_xlim(low, high)
            ax.set_ylim(low, high)
            stats = correlations[(correlations["quantity"] == quantity) & (correlations["alignment"] == alignment)
                                 & (correlations["method_a"] == a) & (correlations["method_b"] == b)].iloc[0]
            symbol = QUANTITY_SYMBOLS[quantity]
            ax.set_xlabel(f"{METHOD_NAMES.get(a, a)} ${symbol}$")
            ax.set_ylabel(f"{METHOD_NAMES.get(b, b)} ${symbol}$")
            ax.set_title(f"${symbol}$ {alignment} rebasin\nr = {stats['pearson']:.2f}, "
                         f"$\\rho$ = {stats['spearman']:.2f}", fontsize=10,
                         fontweight="bold" if alignment == "after" else "normal")
    norm = matplotlib.colors.LogNorm(vmin=1, vmax=max(float(h.get_array().max()) for h in hexbins))
    for hexbin in hexbins:
        hexbin.set_norm(norm)
    fig.colorbar(hexbins[0], ax=axes, label="weights per hexagon", shrink=0.6)
    legends.under_figure(fig, legends.named_handles(axes.flat), ncol=1)
    names = [METHOD_NAMES.get(m, m) for m in dict.fromkeys(m for pair in pairs for m in pair)]
    fig.suptitle(f"One weight space for {', '.join(names[:-1])} and {names[-1]}: every weight's $\\mu$ and $\\sigma$, "
                 "before and after rebasin")
    return fig
