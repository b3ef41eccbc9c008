"""Permutation symmetry: NoT and permutations (``permutation``), rebasin by weight or activation
matching (``rebasin``), interpolation and barriers (``interpolation``), and the compact
representation q_d / q_r of aligned samples (``compact``)."""

from compactbnn.symmetry import compact, interpolation, permutation, rebasin

__all__ = ["permutation", "rebasin", "interpolation", "compact"]
