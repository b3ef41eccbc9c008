"""Permutation symmetry: NoT and permutations (``permutation``), rebasin by weight or activation
matching (``rebasin``), interpolation and barriers (``interpolation``), the compact
representation q_d / q_r of aligned samples (``compact``) and draws from such Gaussians (``gaussian``)."""

from compactbnn.symmetry import compact, gaussian, interpolation, permutation, rebasin, similarity

__all__ = ["permutation", "rebasin", "similarity", "interpolation", "compact", "gaussian"]
