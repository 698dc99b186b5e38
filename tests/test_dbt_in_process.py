"""dbt run in the Dagster process (ddp_assets/dbt/in_process.py): what it changes in dbt."""

import inspect

from dbt_common.behavior_flags import BehaviorFlagRendered

from ddp_assets.dbt import in_process


def _flag_source() -> str:
    flag = BehaviorFlagRendered({"name": "some_flag", "default": False, "docs_url": "u"}, {})
    return flag._behavior_change_event.flag_source


def _stack_source() -> str:
    """dbt_common's own way (inspect.stack), as seen from the same caller."""
    for frame in inspect.stack()[1:]:
        module = inspect.getmodule(frame[0])
        if module is not None:
            return module.__name__
    return "Unknown"


def test_behavior_flags_name_the_same_source_without_reading_the_stack() -> None:
    in_process._name_behavior_flags_cheaply()
    assert BehaviorFlagRendered._default_source is in_process._calling_module
    assert _flag_source() == _stack_source() == __name__
    # a flag that names its source keeps it
    flag = BehaviorFlagRendered(
        {"name": "f", "default": True, "docs_url": "u", "source": "dbt-duckdb"}, {}
    )
    assert flag._behavior_change_event.flag_source == "dbt-duckdb"
