"""The network a config describes, without building it: its permutation widths, parameter count, NoT levels.

Standard library only, so that the config check, the cost model and the Snakefile (memory of the
HMC samples) know them with Snakemake alone; the workflow builds the network from the same keys
(``workflow/scripts/common.py``), and ``tests/test_config.py`` checks that both agree for every kind.

``model.kind`` names the network (absent: ``mlp``, the paper's, so config.yaml and the MLP presets
need no such key), and each kind reads its own keys (``MODEL_KEYS``):

- ``mlp``: ``hidden``, the hidden-layer widths (``compactbnn.models.MLP``);
- ``cnn``: ``channels``, one 3x3 convolution (padding 1) + ReLU + 2x2 max-pool per entry, and
  ``dense``, the widths of the dense ReLU layers after flattening (``compactbnn.models.CNN``);
- ``resnet``: ``width`` channels in a stem convolution and ``blocks`` residual blocks of two
  convolutions each, global average pooling, a linear layer (``compactbnn.models.ResNet``).
"""

from __future__ import annotations

from typing import Sequence

from compactbnn.config.datasets import IMAGE_SHAPES, NUM_CLASSES, NUM_FEATURES

MODEL_KINDS = ("mlp", "cnn", "resnet")
MODEL_KEYS = {"mlp": ("hidden",), "cnn": ("channels", "dense"), "resnet": ("width", "blocks")}
KERNEL = 3  # every convolution's kernel is KERNEL x KERNEL (padding 1: the image size is kept)
POOL = 2  # the CNN's max-pool halves height and width (floor, as PyTorch's MaxPool2d(2))


def kind(model_cfg: dict) -> str:
    """The config's model.kind; absent (config.yaml, the MLP presets) or null: ``mlp``."""
    return model_cfg.get("kind") or "mlp"


def widths_of(num_features: int, hidden: Sequence[int]) -> list[int]:
    """The width of every layer of an MLP: input features, model.hidden, the classes ([784, 512, 10] for MNIST, hidden [512])."""
    return [num_features, *hidden, NUM_CLASSES]


def widths(cfg: dict) -> list[int]:
    """The width of every layer of a (merged) workflow config's MLP: its data set's features, model.hidden, the classes."""
    return widths_of(NUM_FEATURES[cfg["data"]["dataset"]], cfg["model"]["hidden"])


def num_params(widths: Sequence[int]) -> int:
    """Weights and biases of the network of these widths (dense layers): 407,050 for 784-512-10."""
    return sum(i * o + o for i, o in zip(widths[:-1], widths[1:]))


def conv_params(channels_in: int, channels_out: int) -> int:
    """Weights and biases of one KERNEL x KERNEL convolution."""
    return channels_in * KERNEL * KERNEL * channels_out + channels_out


def cnn_feature_maps(image_shape: Sequence[int], channels: Sequence[int]) -> list[tuple[int, int, int]]:
    """(channels, height, width) entering each convolution of a CNN, then the map that is flattened."""
    c, h, w = image_shape
    maps = [(c, h, w)]
    for out in channels:
        h, w = h // POOL, w // POOL
        maps.append((out, h, w))
    return maps


def perm_widths(cfg: dict) -> list[int]:
    """The units (or channels) of each permutation group of the configured network, in the model's spec order.

    MLP: one per hidden layer; CNN: one per convolution's channels, then one per dense layer;
    ResNet: the residual stream (the stem and every block's output, joined by the skips, share one
    permutation), then each block's inner convolution.
    """
    model = cfg["model"]
    if kind(model) == "cnn":
        return [*model["channels"], *model["dense"]]
    if kind(model) == "resnet":
        return [model["width"]] * (1 + model["blocks"])
    return list(model["hidden"])


def model_params(cfg: dict) -> int:
    """Weights and biases of the configured network (any kind): 407,050 for the paper's 784-512-10."""
    model, image = cfg["model"], IMAGE_SHAPES[cfg["data"]["dataset"]]
    if kind(model) == "cnn":
        maps = cnn_feature_maps(image, model["channels"])
        convs = sum(conv_params(a[0], b[0]) for a, b in zip(maps[:-1], maps[1:]))
        c, h, w = maps[-1]
        return convs + num_params([c * h * w, *model["dense"], NUM_CLASSES])
    if kind(model) == "resnet":
        width = model["width"]
        return (conv_params(image[0], width) + 2 * model["blocks"] * conv_params(width, width)
                + num_params([width, NUM_CLASSES]))
    return num_params(widths(cfg))


def work_per_example(cfg: dict) -> int:
    """Multiply-adds (plus biases) of one forward pass of one example: the cost model's unit of work.

    For an MLP this is its parameter count (each weight is used once per example), so the cost
    model's example-parameter passes are unchanged for it; a convolution uses each weight once per
    output position, so its share is its parameters times height times width.
    """
    model, image = cfg["model"], IMAGE_SHAPES[cfg["data"]["dataset"]]
    if kind(model) == "cnn":
        maps = cnn_feature_maps(image, model["channels"])
        convs = sum(conv_params(a[0], b[0]) * a[1] * a[2] for a, b in zip(maps[:-1], maps[1:]))
        c, h, w = maps[-1]
        return convs + num_params([c * h * w, *model["dense"], NUM_CLASSES])
    if kind(model) == "resnet":
        positions = image[1] * image[2]
        convs = conv_params(image[0], model["width"]) + 2 * model["blocks"] * conv_params(model["width"], model["width"])
        return convs * positions + num_params([model["width"], NUM_CLASSES])
    return model_params(cfg)


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


def not_levels_per_group(widths: Sequence[int], num_levels: int) -> list[tuple[int, ...]]:
    """Experiment A's NoT levels of every permutation group: ``not_levels(n_p, num_levels)`` for each width n_p.

    Level i permutes group p by the i-th of its own levels, so every level spans each group's range
    in the same proportion (level 0: NoT 1 in every group; the last: n_p - 1 in every group), and a
    narrow group is not saturated at levels meant for a wide one. With one group (the paper's MLP)
    these are the authors' levels. Every group must have ``num_levels`` distinct levels
    (num_levels <= min(widths) - 1; the config check says so by key).
    """
    levels = [not_levels(width, num_levels) for width in widths]
    short = [(width, len(group)) for width, group in zip(widths, levels) if len(group) != num_levels]
    if short:
        width, count = short[0]
        raise ValueError(f"a permutation group of {width} units has only {count} distinct NoT levels, "
                         f"fewer than the {num_levels} asked for (at most {min(widths) - 1})")
    return levels


def experiment_levels(widths: Sequence[int], num_levels: int, indices: Sequence[int] | None = None) -> list[tuple[int, ...]]:
    """The NoT levels Experiment A trains: ``not_levels_per_group``, or only its levels at ``indices``.

    ``indices`` (``not_experiment.level_indices``) pick levels of the paper's grid by position, e.g.
    those whose numbers the paper prints (NoT 1, 11, 53, 105, 209, 302 of 50 levels at 512 units),
    so that a CPU can afford Experiment A at the paper's width; None: every level (the paper).
    """
    levels = not_levels_per_group(widths, num_levels)
    if indices is None:
        return levels
    return [tuple(group[i] for i in indices) for group in levels]


def num_trained_levels(experiment: dict) -> int:
    """How many NoT levels Experiment A trains per run (``not_experiment``: ``levels``, ``level_indices``)."""
    indices = experiment.get("level_indices")
    return experiment["levels"] if indices is None else len(indices)
