"""``ddp ci``: every product's change in a repository against a base git ref.

:mod:`ddp_assets.ci.changes` resolves the base, lists the files changed since it and maps them
to products (their folders, the dbt macros their models use) and to their downstream;
:mod:`ddp_assets.ci.impact` names the readers a breaking contract change affects, column by
column where their SQL shows which columns they use; :mod:`ddp_assets.ci.report` renders the
result as text, Markdown (a pull-request comment), JUnit XML and JSON.
"""
