"""Errors shared by every layer: a config value the run cannot use."""


class ConfigValueError(ValueError):
  """A config value the run cannot use (an unknown name, an inconsistent duration or batch size).

  Raised before any training step; the experiment mains print its message as one usage line (exit 2)
  instead of a traceback. A ``ValueError``, so library callers can catch either.
  """
