"""Onboarding an existing dbt project: ``ddp import dbt`` and ``ddp contract infer``.

:mod:`.reader` compiles the team's dbt project in a scratch copy (dbt's own runner) and reads
the types of every model from DuckDB (``DESCRIBE`` of the compiled relation);
:mod:`.importer` maps groups, sources, seeds, refs, tests and owners to product folders;
:mod:`.contracts` writes ODCS contracts and refreshes them without touching hand-written parts;
:mod:`.jinja_refs` rewrites ``ref()``/``source()`` calls through Jinja's own lexer.
"""
