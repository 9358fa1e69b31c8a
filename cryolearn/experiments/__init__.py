"""Experiments: measuring the methods, their scores and their costs.

- :mod:`.compare` (import it from there, it is not re-exported here, so
  that the module and its main function keep distinct names):
  :func:`~.compare.compare` measures the four methods and the
  no-restoration baseline side by side on held-out data (one
  :class:`~.compare.ComparisonTable`), after :func:`~.compare.make_methods`
  and :func:`~.compare.train`;
  the side-by-side chapter (``book/11_side_by_side.ipynb``) prints it.
- :mod:`.timing`: :func:`measure` (median wall time and peak memory of a
  call, on CPU or CUDA), :func:`format_bytes`; used by the comparison and by
  ``benchmarks/run.py``.
"""

from .timing import Measurement, format_bytes, measure

__all__ = ["Measurement", "format_bytes", "measure"]
