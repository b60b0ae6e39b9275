"""The one error every data loader raises when a file or a prepared dataset is missing."""


class DataNotFoundError(FileNotFoundError):
  """A dataset file or prepared TFDS dataset is missing.

  The message names the missing file or dataset, where to get it, where to put it, and the config key
  (``--config.data.<key>=...``) or command that prepares it.
  """
