"""What the workflow must know about each data set before loading it: sizes, image shapes, IDX file names.

Plain Python (no numpy, no JAX), so that the Snakemake workflow checks a config with
Snakemake alone; ``compactbnn.data`` loads the data sets and re-exports these names.
"""

KNOWN_DATASETS = ("mnist", "digits")
# (training, test) examples of each data set, as compactbnn.data.load returns them
NUM_EXAMPLES = {"mnist": (60000, 10000), "digits": (1438, 359)}
# (channels, height, width) of each data set's images: a convolutional network reads the flat
# pixels of compactbnn.data.load (C * H * W values per example, row by row) in this shape
IMAGE_SHAPES = {"mnist": (1, 28, 28), "digits": (1, 8, 8)}
NUM_FEATURES = {name: c * h * w for name, (c, h, w) in IMAGE_SHAPES.items()}  # mnist 784, digits 64
NUM_CLASSES = 10

# Canonical MNIST IDX file stems; each may also be gzipped (".gz").
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
