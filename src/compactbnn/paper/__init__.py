"""The paper: its experiments as tables (``experiments``; Experiment C's, Table 1 and Figure 3, in
``posterior``), its claims as checks the data can fail (``claims``), the numbers it prints
(``printed_numbers``) and ours beside them (``reproduction``), the claims report (``report``) and its
figures (``figures``); beyond the paper, the permutation modes cyclical SG-MCMC visits (``modes``). The
only part that knows the paper; the workflow's scripts call it."""

import importlib

__all__ = ["experiments", "posterior", "claims", "modes", "printed_numbers", "reproduction", "report", "figures"]


def __getattr__(name: str):
    """Each module loaded on first use: a figure's notebook, which imports ``figures`` (matplotlib), then does
    not import ``claims`` and ``experiments`` (SciPy's stats, JAX): 1.9 instead of 2.9 CPU seconds of imports
    in every notebook's job."""
    if name in __all__:
        return importlib.import_module(f"compactbnn.paper.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
