"""Every figure names every mark it draws, and no legend covers data (issue 21).

Each figure function is drawn from small synthetic tables of the workflow's CSV columns, whose
curves fill their axes, then checked: every line, band, dot cloud and step histogram carries a
label that a legend shows, or is colour-coded by a colour bar; every legend lies inside the figure
and off every axes' data area, tick labels, axis labels and title, and off every other legend.
"""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from compactbnn.paper import experiments, figures  # noqa: E402

LAYERS = ("w1", "b1", "w2", "b2")


def not_experiment_table(rng) -> pd.DataFrame:
    rows = []
    for run in range(3):
        for level in (1, 5, 10, 20, 31):
            for curve in ("init", "trained", "control"):
                row = {"run": run, "not_init": level, "curve": curve, "not_measured": rng.integers(0, 32)}
                for column in ("distance", "barrier", "barrier_midpoint", *(f"{name}_{split}" for split in ("train", "test")
                               for name in ("barrier", "barrier_midpoint", "error_barrier", "error_barrier_midpoint"))):
                    row[column] = rng.uniform(0, 1)
                for layer in LAYERS:  # the output bias is never permuted: zero at initialisation
                    row[f"distance_{layer}"] = 0.0 if (layer == "b2" and curve == "init") else rng.uniform(1e-3, 10)
                for network in ("first", "second"):
                    for split in ("train", "test"):
                        row[f"{network}_loss_{split}"] = rng.uniform(0, 2)
                        row[f"{network}_accuracy_{split}"] = rng.uniform(0.8, 1)
                rows.append(row)
    return pd.DataFrame(rows)


def interpolation_table(rng) -> pd.DataFrame:
    rows = []
    for epoch in range(5):
        for lam in np.linspace(0, 1, 5):
            for rebasin in ("before", "after"):
                for split in ("train", "test"):
                    row = {"epoch": epoch, "lambda": lam, "rebasin": rebasin, "split": split,
                           "loss": rng.uniform(0.1, 2.3), "accuracy": rng.uniform(0.1, 1),
                           "not_to_w0": int(rng.integers(0, 32)), "l2_to_w0": rng.uniform(1, 10)}
                    row.update({f"l2_to_w0_{layer}": rng.uniform(0.1, 10) for layer in LAYERS})
                    rows.append(row)
    return pd.DataFrame(rows)


def sigma_table(rng) -> pd.DataFrame:
    frames = [pd.DataFrame({"method": method, "representation": representation, "parameter": np.arange(500),
                            "sigma": rng.uniform(0, 1.3, 500)})
              for method, representation in (("hmc", "q_d"), ("hmc", "q_r"), ("ensemble", "q_d"), ("ensemble", "q_r"),
                                             ("vi", "q"), ("sgmcmc", "q_d"), ("sgmcmc", "q_r"))]
    return experiments.sigma_histograms(pd.concat(frames, ignore_index=True), num_bins=30)


def pruning_table(rng) -> pd.DataFrame:
    return pd.DataFrame([{"curve": curve, "retained_percent": percent, "accuracy": rng.uniform(0.1, 1)}
                         for curve in figures.PRUNING_STYLE for percent in range(100, -1, -10)])


def running_table(rng, chains: int) -> pd.DataFrame:
    rows = [{"chain": str(chain), "n": n} for chain in range(chains) for n in range(1, 21)]
    rows += [{"chain": "pooled", "n": n} for n in range(1, 20 * chains + 1)]
    table = pd.DataFrame(rows)
    for column in ("accuracy", "nll", "sample_accuracy", "sample_nll"):
        table[column] = rng.uniform(0.1, 1, len(table))
    return table


def weight_space_tables(rng) -> tuple[pd.DataFrame, pd.DataFrame]:
    values = pd.DataFrame({"alignment": np.repeat(["before", "after"], 400), "parameter": np.tile(np.arange(400), 2)})
    methods = ("hmc", "ensemble", "vi", "sgmcmc")
    for method in methods:
        values[f"mu_{method}"] = rng.normal(0, 1, len(values))
        values[f"sigma_{method}"] = rng.uniform(0, 1, len(values))
    correlations = pd.DataFrame([{"quantity": quantity, "method_a": a, "method_b": b, "alignment": alignment,
                                  "pearson": rng.uniform(-1, 1), "spearman": rng.uniform(-1, 1),
                                  "top10_overlap": rng.uniform(0, 1)}
                                 for quantity in ("mu", "sigma") for a, b in itertools.combinations(methods, 2)
                                 for alignment in ("before", "after")])
    return values, correlations


def draw(name: str, rng, chains: int = 4) -> plt.Figure:
    if name == "figure1":
        return figures.figure1(interpolation_table(rng))
    if name == "figure2":
        return figures.figure2(not_experiment_table(rng), interpolation_table(rng))
    if name == "figure3":
        return figures.figure3(sigma_table(rng), pruning_table(rng))
    if name == "figure4":
        return figures.figure4(*weight_space_tables(rng))
    if name == "figure_s1":
        return figures.figure_s1(not_experiment_table(rng), interpolation_table(rng))
    return figures.figure_s2(running_table(rng, chains))


def figure_problems(fig: plt.Figure) -> list[str]:
    """What hides or leaves unnamed a mark of ``fig``: one sentence per problem, none when it is readable."""
    fig.canvas.draw()  # lays the figure out (constrained layout), as saving it does
    renderer = fig.canvas.get_renderer()
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    named = {text.get_text() for legend in legends for text in legend.get_texts()}
    colour_scales = [m for ax in fig.axes for m in (*ax.collections, *ax.images) if getattr(m, "colorbar", None)]
    colourbar_axes = {m.colorbar.ax for m in colour_scales}
    colourbar_norms = [m.colorbar.norm for m in colour_scales]
    problems = []
    for ax in fig.axes:
        if ax in colourbar_axes:
            continue
        where = ax.get_title() or "an untitled axes"
        for mark in (*ax.lines, *ax.collections, *ax.patches, *ax.images):
            if not mark.get_visible():
                continue
            coloured = getattr(mark, "get_array", lambda: None)() is not None
            if coloured and any(mark.norm is norm for norm in colourbar_norms):
                continue  # its colour scale is named by a colour bar
            label = mark.get_label()
            if label.startswith("_") or not label:
                problems.append(f"{where}: a {type(mark).__name__} without a label")
            elif label not in named:
                problems.append(f"{where}: '{label}' ({type(mark).__name__}) is in no legend")
    keep_clear = []
    for ax in fig.axes:
        where = ax.get_title() or ax.get_ylabel() or "an axes"
        keep_clear.append((f"the data area of {where}", ax.get_window_extent(renderer)))
        for axis in (ax.xaxis, ax.yaxis):
            box = axis.get_tightbbox(renderer)
            if box is not None:
                keep_clear.append((f"the {axis.axis_name}-axis labels of {where}", box))
        if ax.get_title():
            keep_clear.append((f"the title of {where}", ax.title.get_window_extent(renderer)))
    boxes = [legend.get_window_extent(renderer) for legend in legends]
    for i, box in enumerate(boxes):
        first = legends[i].get_texts()[0].get_text() if legends[i].get_texts() else "?"
        if not (box.x0 >= -1 and box.y0 >= -1 and box.x1 <= fig.bbox.x1 + 1 and box.y1 <= fig.bbox.y1 + 1):
            problems.append(f"the legend of '{first}' reaches outside the figure")
        problems += [f"the legend of '{first}' covers {what}" for what, other in keep_clear if box.overlaps(other)]
        problems += [f"the legend of '{first}' covers another legend" for other in boxes[i + 1:] if box.overlaps(other)]
    return problems


@pytest.mark.parametrize("name", ["figure1", "figure2", "figure3", "figure4", "figure_s1", "figure_s2"])
def test_every_mark_is_named_and_no_legend_covers_data(name):
    fig = draw(name, np.random.default_rng(0))
    try:
        assert figure_problems(fig) == []
    finally:
        plt.close(fig)


@pytest.mark.parametrize("chains", [1, 9])
def test_figure_s2_names_any_number_of_chains(chains):
    fig = draw("figure_s2", np.random.default_rng(1), chains=chains)
    try:
        assert figure_problems(fig) == []
        named = {text.get_text() for text in fig.legends[0].get_texts()}
        assert {f"chain {c}" for c in range(chains)} | {"pooled (interleaved)", figures.SAMPLE_DOTS} <= named
    finally:
        plt.close(fig)


def test_the_check_finds_a_legend_on_the_data_and_an_unnamed_mark():
    fig, ax = plt.subplots(figsize=(4, 3), constrained_layout=True)
    x = np.linspace(0, 1, 50)
    ax.plot(x, x, label="a curve")
    ax.fill_between(x, 0, 1, alpha=0.2)  # covers the whole data area, named by nothing
    ax.set_title("panel")
    ax.legend(loc="center")
    try:
        problems = figure_problems(fig)
    finally:
        plt.close(fig)
    assert "panel: a FillBetweenPolyCollection without a label" in problems
    assert "the legend of 'a curve' covers the data area of panel" in problems


@pytest.mark.parametrize("runs, band", [(1, False), (3, True)])
def test_figure2_names_the_sd_band_only_where_one_is_drawn(runs, band):
    """One run of Experiment A (presets/paper_cpu.yaml) draws no +-1 sd band, so its legend names none."""
    rng = np.random.default_rng(2)
    table = not_experiment_table(rng)
    fig = figures.figure2(table[table["run"] < runs], interpolation_table(rng))
    try:
        named = {text.get_text() for legend in fig.legends for text in legend.get_texts()}
        assert (figures.legends.SD_BAND in named) is band
        assert figures.CURVE_LABELS["trained"] in named
    finally:
        plt.close(fig)
