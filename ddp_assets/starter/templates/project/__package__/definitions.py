"""The Dagster code location: ddp's definitions over this project's ``defs/`` folder."""

from pathlib import Path

import dagster as dg

from ddp_assets.platform import build_definitions


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(Path(__file__).parent)
