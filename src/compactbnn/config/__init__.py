"""What the library knows of a configuration, in the standard library alone.

The Snakefile imports this part (and nothing else of compactbnn) while it parses, so that it
parses and dry-runs with Snakemake alone, without numpy or JAX: data set shapes (``datasets``),
and the expected wall time of a config's jobs (``cost``).
"""

from compactbnn.config import claim_ids, cost, datasets

__all__ = ["claim_ids", "cost", "datasets"]
