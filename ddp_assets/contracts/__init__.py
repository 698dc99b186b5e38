"""Data contracts: ODCS reading, compiling, enforcing (dbt, Soda, pandera) and write-audit-publish.

Soda Core sends anonymous usage telemetry to collect.soda.io by default (OpenTelemetry, in a
background thread that also flushes when the process exits). ddp turns it off unless the user
chose otherwise with ``SODA_CORE_TELEMETRY_ENABLED``: a platform should not phone home on its
users' behalf, and without internet access (CI, air-gapped sites) the exporter's retries kept a
``ddp materialize`` waiting seconds after its run had finished.
"""

import os

os.environ.setdefault("SODA_CORE_TELEMETRY_ENABLED", "false")
