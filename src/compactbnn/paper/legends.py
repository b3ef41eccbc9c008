"""Legends that hide no data: every labelled mark named once, each legend outside every axes.

The figure functions label every mark they draw (a line, a +-1 sd band, a cloud of dots) and then
place the legend with one of these: beside an axes, below its x-axis, or under the whole figure,
never inside an axes, where it covers a curve in whichever corner matplotlib's "best" picks for
another preset's data (Figure 3's pruning legend did at the quick preset). All three stay inside
constrained layout, which makes room for them.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.collections import Collection, PathCollection
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.transforms import ScaledTranslation

SD_BAND = "shaded: $\\pm$1 sd over runs"
NEUTRAL = "0.45"  # the grey of an entry that stands for marks drawn in several colours
GAP = 0.08  # inches between an x-axis label and a legend below it


def _grey_proxy(handle, label: str):
    """A grey legend handle of the same kind as ``handle``: dots, a line of its style, or a band."""
    if isinstance(handle, PathCollection):
        return Line2D([], [], ls="", marker="o", ms=3, color=NEUTRAL, alpha=0.6, label=label)
    if isinstance(handle, Line2D):
        return Line2D([], [], color=NEUTRAL, ls=handle.get_linestyle(), label=label)
    return Patch(facecolor=NEUTRAL, alpha=0.3, label=label)


def _draws_nothing(handle) -> bool:
    """Whether a mark is an empty collection, as seaborn's sd band over a single run (no paths)."""
    return isinstance(handle, Collection) and not handle.get_paths()


def named_handles(axes, shared: tuple[str, ...] = (SD_BAND,)) -> dict[str, object]:
    """One handle per label of the marks on ``axes``, in drawing order; removes the axes' own legends.

    A label in ``shared`` names marks drawn in several colours (the sd bands of every curve, the
    dots of every chain): it gets one grey entry, after the others, unless none of them draws
    anything (the sd band over a single run). Seaborn's automatic legends,
    which sit inside the axes, are removed here.
    """
    handles: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label in shared and _draws_nothing(handle):
                continue  # the sd band of a single run: nothing is shaded, so the legend names no band
            handles.setdefault(label, handle)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    for label in shared:
        if label in handles:
            handles[label] = _grey_proxy(handles.pop(label), label)
    return handles


def below(ax: plt.Axes, handles: dict[str, object], ncol: int | None = None, fontsize: float = 7):
    """The legend centred under ``ax``, below its tick labels and x label.

    ``ncol`` None: two columns, three past ten entries (a deeper network's per-layer curves), so
    the legend stays about as wide as a panel and no taller than it needs to be.
    """
    ncol = ncol or (2 if len(handles) <= 10 else 3)
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    # the x-axis' depth under the axes in inches: fixed by its font sizes, so it holds after
    # constrained layout has moved and resized the axes
    axis = ax.xaxis.get_tightbbox(renderer)
    depth = 0.0 if axis is None else (ax.get_window_extent(renderer).y0 - axis.y0) / fig.dpi
    transform = ax.transAxes + ScaledTranslation(0, -(depth + GAP), fig.dpi_scale_trans)
    return ax.legend(list(handles.values()), list(handles), loc="upper center", bbox_to_anchor=(0.5, 0),
                     bbox_transform=transform, ncol=ncol, fontsize=fontsize, borderaxespad=0)


def beside(ax: plt.Axes, handles: dict[str, object], fontsize: float = 7):
    """The legend right of ``ax``, its top level with the axes' top."""
    return ax.legend(list(handles.values()), list(handles), loc="upper left", bbox_to_anchor=(1.02, 1),
                     fontsize=fontsize, borderaxespad=0)


def under_figure(fig: plt.Figure, handles: dict[str, object], ncol: int, where: str = "center",
                 fontsize: float = 8):
    """One legend for the whole figure, under all its axes (``where``: left, center or right)."""
    return fig.legend(list(handles.values()), list(handles), loc=f"outside lower {where}", ncol=ncol,
                      fontsize=fontsize)
