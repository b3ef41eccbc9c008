"""The paper: its experiments as tables (``experiments``; Experiment C's, Table 1 and Figure 3, in
``posterior``), its claims as checks the data can fail (``claims``), the numbers it prints
(``printed_numbers``) and ours beside them (``reproduction``), the claims report (``report``) and its
figures (``figures``); beyond the paper, the permutation modes cyclical SG-MCMC visits (``modes``). The
only part that knows the paper; the workflow's scripts call it."""

from compactbnn.paper import claims, experiments, figures, modes, posterior, printed_numbers, report, reproduction

__all__ = ["experiments", "posterior", "claims", "modes", "printed_numbers", "reproduction", "report", "figures"]
