"""The end of a process started by `accelerate launch` (the batch command line and scripts/train.py)."""

from __future__ import annotations

import logging
import os
import sys


def end_processes(code: int) -> int:
    """Every process done, the process group closed, and then the process ended with `code` at once.

    Gloo's worker threads can still be releasing the last collectives' tensors when the group is closed, which takes
    the GIL; if the interpreter is being torn down by then, the process aborts ("terminate called without an active
    exception", about once in 40 launches here; cf. pytorch/pytorch#179291), or, where DDP's reducer still holds the
    group, hangs for ever in its destructor (seen once in a CI run: Accelerate 1.16's `end_training` closes the group
    first, so a process that then returned normally freed the reducer and waited on a thread waiting for the GIL).
    Every result is written and closed by now, so the process skips that teardown. Outside a launch (no process
    group, WORLD_SIZE 1 or unset), returns `code`."""
    import torch.distributed

    initialized = torch.distributed.is_available() and torch.distributed.is_initialized()
    if not initialized and int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return code
    if initialized:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)
