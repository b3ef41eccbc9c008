"""The paper: its experiments as tables (``experiments``), its claims as checks (``claims``), its
printed numbers (``printed``) and ours beside them (``reproduction``), the claims report
(``report``) and its figures (``figures``)."""
