"""Depots: the platform's declared connections to source systems (databases, APIs, storage).

A depot is declared once for the project, in ``depots/<name>.yaml`` (:mod:`.model`, read by
:mod:`.loader`); its credentials are references to secrets (``env:VAR``, ``file:PATH``),
resolved only when a connection is opened (:mod:`.secrets`), and redacted from every message.
Input ports of ``type: depot`` load from a depot with dlt (``ddp_assets.ingest.depot_assets``).

Plain Python and pydantic: nothing here imports dlt, SQLAlchemy or Dagster at import time.
"""
