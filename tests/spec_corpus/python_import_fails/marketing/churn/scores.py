"""Churn scores (a corpus fixture)."""

import ddp_no_such_module


def score(customers: object) -> object:
    return ddp_no_such_module.score(customers)
