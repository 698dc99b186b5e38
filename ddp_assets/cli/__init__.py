"""The ddp command line."""

from ddp_assets.runtime import collector

collector.tune()  # before the command imports Dagster and dbt (runtime/collector.py)
