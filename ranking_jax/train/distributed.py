"""Multi-process set-up: ``jax.distributed.initialize`` from explicit values or the environment.

Each process loads its own slice of every global batch (``make_train_iterator(step, process_index,
process_count)``), owns its local devices, and only process 0 writes logs and ``results.json``
(checkpoints are written collectively by Orbax).

Values are taken from the arguments, else from the environment variables ``JAX_COORDINATOR_ADDRESS``,
``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``. When none is given, nothing is initialised unless
``auto=True`` (then ``jax.distributed.initialize()`` auto-detects Cloud TPU, SLURM, MPI...).

On the CPU backend, cross-process collectives need ``jax_cpu_collectives_implementation="gloo"``, which
:func:`initialize` sets; two processes on one machine over loopback are exercised by
``tests/test_train_subprocess.py``.
"""

from __future__ import annotations

import os
from typing import Optional

import jax


def initialize(coordinator_address: Optional[str] = None, num_processes: Optional[int] = None,
               process_id: Optional[int] = None, *, local_device_ids: Optional[list[int]] = None,
               auto: bool = False) -> bool:
  """Initialises ``jax.distributed`` if a multi-process run is requested; returns whether it did.

  Must run before any other JAX call that touches devices.
  """
  coordinator_address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS") or None
  if num_processes is None and os.environ.get("JAX_NUM_PROCESSES"):
    num_processes = int(os.environ["JAX_NUM_PROCESSES"])
  if process_id is None and os.environ.get("JAX_PROCESS_ID"):
    process_id = int(os.environ["JAX_PROCESS_ID"])
  explicit = coordinator_address is not None or num_processes is not None or process_id is not None
  if not explicit and not auto:
    return False
  if explicit and (coordinator_address is None or num_processes is None or process_id is None):
    raise ValueError("A multi-process run needs coordinator_address, num_processes and process_id "
                     f"(flags or JAX_* environment variables); got {coordinator_address!r}, "
                     f"{num_processes!r}, {process_id!r}.")
  platforms = os.environ.get("JAX_PLATFORMS", "") or str(jax.config.jax_platforms or "")
  if platforms.startswith("cpu"):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  if explicit:
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id, local_device_ids=local_device_ids)
  else:
    jax.distributed.initialize()
  return True
