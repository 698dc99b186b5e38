"""The demo instance's code location: the platform's definitions over ``ddp_assets/defs``.

This module and ``ddp_assets/defs/`` are the demo, an instance of the platform like the
project ``ddp init`` writes for a team (``ddp init --demo`` copies these products); everything
else under ``ddp_assets/`` is the platform.
"""

from pathlib import Path

import dagster as dg

from ddp_assets.platform import build_definitions


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(Path(__file__).parent)
