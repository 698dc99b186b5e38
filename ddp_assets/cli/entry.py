"""The ``ddp`` console script: the collector setting first, then the command.

Apart from :mod:`ddp_assets.cli.app` so that importing the command (tests, ``python -m``) changes
nothing process-wide: only running ``ddp`` does (``compat.tune_collector``, before the command
imports Dagster and dbt, whose imports are most of what it saves).
"""

from __future__ import annotations


def main() -> None:
    from ddp_assets import compat

    compat.tune_collector()
    from ddp_assets.cli.app import main as run

    run()
