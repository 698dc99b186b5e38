"""The code location loads: every product's spec, contract and SQL agree with dbt."""

import dagster as dg


def test_definitions_load() -> None:
    from __PACKAGE__.definitions import defs

    built = defs() if callable(defs) else defs
    assert isinstance(built, dg.Definitions)
