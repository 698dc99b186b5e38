"""Data contracts: ODCS reading, compiling, enforcing (dbt, Soda, pandera) and write-audit-publish.

Soda Core sends anonymous usage telemetry to collect.soda.io by default (OpenTelemetry, in a
background thread that also flushes when the process exits). ddp turns it off unless the user
chose otherwise with ``SODA_CORE_TELEMETRY_ENABLED`` (Soda's own setting): a platform should
not phone home on its users' behalf, and without internet access (CI, air-gapped sites) the
exporter's retries kept a ``ddp materialize`` waiting seconds after its run had finished.
Importing this package changes nothing; :func:`soda_telemetry_default_off` does, around the
import of Soda only.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

SODA_TELEMETRY_ENV = "SODA_CORE_TELEMETRY_ENABLED"
# Importing it creates Soda's telemetry singleton, which reads the setting once, then.
SODA_TELEMETRY_READ_AT_IMPORT_OF = "soda_core.contracts"


@contextmanager
def soda_telemetry_default_off() -> Iterator[None]:
    """Soda's telemetry setting as ``false`` for the block, unless the user set it.

    Soda reads ``SODA_CORE_TELEMETRY_ENABLED`` once, when its telemetry singleton is created on
    the first import of ``soda_core.contracts``: import Soda inside this block and the setting
    holds for the life of the process, while ``os.environ`` is back as it was after the block
    (a subprocess, or the user's own code, sees no variable ddp set). Once Soda is imported the
    block changes nothing.
    """
    if SODA_TELEMETRY_ENV in os.environ or SODA_TELEMETRY_READ_AT_IMPORT_OF in sys.modules:
        yield
        return
    os.environ[SODA_TELEMETRY_ENV] = "false"
    try:
        yield
    finally:
        if os.environ.get(SODA_TELEMETRY_ENV) == "false":  # as set here, not by the block
            del os.environ[SODA_TELEMETRY_ENV]
