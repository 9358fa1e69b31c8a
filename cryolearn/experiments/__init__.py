"""Experiments: measuring the methods, their scores and their costs.

- :mod:`.timing`: :func:`measure` (median wall time and peak memory of a
  call, on CPU or CUDA), :func:`format_bytes`; used by the comparison and by
  ``benchmarks/run.py``.
"""

from .timing import Measurement, format_bytes, measure

__all__ = ["Measurement", "format_bytes", "measure"]
