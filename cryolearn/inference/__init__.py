"""Inference beyond one box: restoring whole tomograms with a trained method.

- :mod:`.tiling`: :func:`restore_tiled` cuts a tomogram into overlapping
  cubic tiles (:func:`tile_starts`), restores them in batches, each
  normalised like a training subtomogram, and blends them with a smooth
  window (:func:`blend_window`). ``cryolearn reconstruct`` uses it for
  tomograms larger than the training box; :func:`seam_ratio` measures
  whether the tile borders show in the result.
"""

from .tiling import blend_window, restore_tiled, seam_ratio, tile_starts

__all__ = ["blend_window", "restore_tiled", "seam_ratio", "tile_starts"]
