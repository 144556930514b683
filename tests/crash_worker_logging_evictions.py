"""``python -m worker``, unchanged, except that the SDK's cache-eviction log is turned on.

The SDK logs "Evicting workflow with run ID ..." at DEBUG, below the worker's INFO level; the
fault-tolerance tests read it to prove that waiting runs really left memory and were rebuilt
from history. Test-only: run as ``python -m tests.crash_worker_logging_evictions [worker args]``.
"""

import logging

import worker
from console_exit import exit_process

EVICTION_LOGGER = "temporalio.worker._workflow"

if __name__ == "__main__":
    logging.getLogger(EVICTION_LOGGER).setLevel(logging.DEBUG)
    exit_process(worker.main())
