"""The network a config describes, without building it: its widths, parameter count, NoT levels.

Standard library only, so that the config check, the cost model and the Snakefile (memory of the
HMC samples) know them with Snakemake alone; the library builds the network from the same sizes.
"""

from __future__ import annotations

from typing import Sequence

from compactbnn.config.datasets import NUM_CLASSES, NUM_FEATURES


def widths_of(num_features: int, hidden: Sequence[int]) -> list[int]:
    """The width of every layer: input features, model.hidden, the classes ([784, 512, 10] for MNIST, hidden [512])."""
    return [num_features, *hidden, NUM_CLASSES]


def widths(cfg: dict) -> list[int]:
    """The width of every layer of a (merged) workflow config's network: its data set's features, model.hidden, the classes."""
    return widths_of(NUM_FEATURES[cfg["data"]["dataset"]], cfg["model"]["hidden"])


def num_params(widths: Sequence[int]) -> int:
    """Weights and biases of the network of these widths (dense layers): 407,050 for 784-512-10."""
    return sum(i * o + o for i, o in zip(widths[:-1], widths[1:]))


def not_levels(width: int, num_levels: int) -> tuple[int, ...]:
    """The authors' NoT levels: ``numpy.linspace(1, width - 1, num_levels)`` cast to int (512 units, 50 levels).

    Levels that coincide after the cast (only when num_levels > width - 1) are kept once, in
    increasing order. Computed as numpy's linspace computes (i * step + start, the last point set
    to the end), so that the levels equal numpy's to the last bit without importing numpy.
    """
    if width < 2:
        raise ValueError(f"a hidden layer of width {width} has no permutation with NoT >= 1")
    if num_levels < 1:
        raise ValueError(f"num_levels must be >= 1, got {num_levels}")
    start, stop = 1.0, float(width - 1)
    if num_levels == 1:
        points = [start]
    else:
        step = (stop - start) / (num_levels - 1)
        if step == 0:  # numpy's branch for a zero step: i / div * delta
            points = [i / (num_levels - 1) * (stop - start) + start for i in range(num_levels - 1)]
        else:
            points = [float(i) * step + start for i in range(num_levels - 1)]
        points.append(stop)
    return tuple(sorted({int(point) for point in points}))
