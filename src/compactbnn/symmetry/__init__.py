"""Permutation symmetry: NoT and permutations (``permutation``), rebasin by weight or activation
matching (``rebasin``; its scores in ``similarity``, weight matching's coordinate descent in
``descent``), interpolation and barriers (``interpolation``), the compact
representation q_d / q_r of aligned samples (``compact``) and draws from such Gaussians (``gaussian``)."""

from compactbnn.symmetry import compact, descent, gaussian, interpolation, permutation, rebasin, similarity

__all__ = ["permutation", "rebasin", "similarity", "descent", "interpolation", "compact", "gaussian"]
