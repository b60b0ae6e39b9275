"""The random-access protocol of every data source: ``len(source)`` and ``source[indices]``.

The pipeline (:mod:`ranking_jax.data.pipeline`) reads a batch as ``source[indices]``: a dict of arrays with
a leading batch axis. Sources that decode one example at a time (image files, TFDS records) subclass
:class:`ExampleSource` and write only :meth:`ExampleSource.read_example`; the index checks and the batching
are here, once.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class ExampleSource:
  """Base of sources that build one example at a time.

  Subclasses define ``__len__`` and :meth:`read_example`. Indexing:

  * ``source[i]`` (an int, negative counts from the end): example ``i``, a dict of arrays;
  * ``source[indices]`` (a 1-D integer sequence or array, or a slice): the examples stacked on a new
    leading axis.

  Raises (from indexing):
    IndexError: an index outside ``[-len, len)``.
    ValueError: no indices (a batch of zero examples has no shapes to stack).
    TypeError: indices that are not integers, or an array of more than one dimension.
  """

  def __len__(self) -> int:
    raise NotImplementedError

  def read_example(self, index: int) -> dict[str, np.ndarray]:
    """Example ``index`` (``0 <= index < len(self)``, already checked) as a dict of arrays."""
    raise NotImplementedError

  def check_index(self, index: Any) -> int:
    """``index`` as a non-negative int below ``len(self)``; raises IndexError or TypeError."""
    if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
      raise TypeError(f"an index must be an integer, got {index!r}.")
    index = int(index)
    position = index + len(self) if index < 0 else index
    if not 0 <= position < len(self):
      raise IndexError(f"index {index} out of range for {len(self)} examples of {type(self).__name__}.")
    return position

  def __getitem__(self, indices: Any) -> dict[str, np.ndarray]:
    if isinstance(indices, slice):
      indices = np.arange(len(self))[indices]
    if np.ndim(indices) == 0:
      return self.read_example(self.check_index(indices.item() if isinstance(indices, np.ndarray)
                                                else indices))
    indices = np.asarray(indices)
    if indices.ndim == 1 and indices.size == 0:
      raise ValueError("cannot build a batch from zero indices.")
    if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
      raise TypeError(f"indices must be an int or a 1-D integer array, got {indices!r}.")
    examples = [self.read_example(self.check_index(i)) for i in indices]
    return {key: np.stack([e[key] for e in examples]) for key in examples[0]}
