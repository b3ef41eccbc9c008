"""The paper: its experiments as tables (``experiments``), its claims as checks the data can fail
(``claims``), the numbers it prints (``printed_numbers``) and ours beside them (``reproduction``), the
claims report (``report``) and its figures (``figures``). The only part that knows the paper; the
workflow's scripts call it."""

from compactbnn.paper import claims, experiments, figures, printed_numbers, report, reproduction

__all__ = ["experiments", "claims", "printed_numbers", "reproduction", "report", "figures"]
