"""What the library knows of a configuration, each piece once, in the standard library alone.

The Snakefile imports this part (and nothing else of compactbnn) while it parses, so that it
parses and dry-runs with Snakemake alone, without numpy or JAX: data set shapes (``datasets``),
the network a config describes (``shapes``: layer sizes, parameter count, NoT levels), the rules
of the config dataclasses' fields (``fields``), which config key each field comes from (``keys``),
the claim ids (``claim_ids``) and the expected wall time of a config's jobs (``cost``).
``checks`` (the check of a whole config file, by key) also needs PyYAML and jsonschema, which
Snakemake brings, and ``interpreter`` gives Snakemake a shell-safe name for the running Python
(snakemake/snakemake#2645); both are imported by name, not here.
"""

from compactbnn.config import claim_ids, cost, datasets, fields, keys, shapes

__all__ = ["claim_ids", "cost", "datasets", "fields", "keys", "shapes"]
