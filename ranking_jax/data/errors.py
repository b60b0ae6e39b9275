"""The one error every data loader raises when a file or a prepared dataset is missing."""

from __future__ import annotations

import os
from typing import Union


class DataNotFoundError(FileNotFoundError):
  """A dataset file or prepared TFDS dataset is missing.

  The message names the missing file or dataset, where to get it, where to put it, and the config key
  (``--config.data.<key>=...``) or command that prepares it.
  """


def missing_file_error(path: Union[str, os.PathLike], *, what: str, get: str, put: str,
                       config_key: str) -> DataNotFoundError:
  """A :class:`DataNotFoundError` whose message says the four things every such message must say.

  Args:
    path: the file or folder that was looked for.
    what: what it is (``"CelebA-HQ annotation file"``).
    get: where to get it (a URL and which file of the download).
    put: where to put it.
    config_key: the config key that points at it (``"config.data.data_dir"``).

  Returns:
    The error (to ``raise``).

  >>> str(missing_file_error("/d/a.txt", what="Annotation file", get="https://x", put="the data folder",
  ...                        config_key="config.data.data_dir"))[:46]
  "Annotation file not found at '/d/a.txt'. Get i"
  """
  return DataNotFoundError(f"{what} not found at {os.fspath(path)!r}. Get it from {get}; put it in {put} "
                           f"and set --{config_key}=... to that folder.")
