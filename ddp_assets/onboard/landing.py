"""``ddp new PRODUCT --from-file FILE``: a source-aligned product over a landing file.

The file's columns and types are DuckDB's, read with the reader ddp loads landing files with
(:func:`ddp_assets.warehouse.duckdb.file_reader`), not guessed: the product gets a file input
port over the file's folder in the landing zone (the file is copied there when it is
elsewhere), a model that selects every column from the port, and a contract that lists them
with their physical types. It validates and builds as soon as it is written.
"""

from __future__ import annotations

import re
import shutil
from functools import cache
from pathlib import Path

import duckdb

from ddp_assets.onboard.contracts import ColumnFacts, ObjectFacts, contract_text, physical_type
from ddp_assets.scaffold import scaffold_product
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.errors import SpecErrors, SpecProblem
from ddp_assets.warehouse.duckdb import file_reader

FORMATS = {".csv": "csv", ".parquet": "parquet", ".json": "json", ".jsonl": "json"}
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _problem(message: str, hint: str) -> SpecErrors:
    return SpecErrors([SpecProblem("(command line)", None, "--from-file", message, hint)])


def file_columns(path: Path, file_format: str) -> list[tuple[str, str]]:
    """``(column, DuckDB type)`` of a landing file, as ddp's loader reads it."""
    try:
        with duckdb.connect() as connection:
            rows = connection.execute(
                f"describe select * from {file_reader([path], file_format)}"
            ).fetchall()
    except duckdb.Error as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise _problem(
            f"DuckDB cannot read {path} as {file_format}: {first}",
            "give a CSV, Parquet or JSON-lines file with a header",
        ) from None
    return [(str(r[0]), str(r[1])) for r in rows]


@cache
def _keywords() -> frozenset[str]:
    """The words sqlglot's DuckDB tokenizer reads as keywords (``order`` of ``ORDER BY``,
    ``select``, ``end``...), less the type names (``date``, ``text``), which DuckDB takes as
    column names: a column named so is renamed (``order_``)."""
    from sqlglot.dialects.duckdb import DuckDB
    from sqlglot.parser import Parser

    return frozenset(
        word.lower()
        for key, token in DuckDB.Tokenizer.KEYWORDS.items()
        if token not in Parser.TYPE_TOKENS
        for word in key.split()
        if _IDENTIFIER.match(word)
    )


def _renamed(names: list[str]) -> list[tuple[str, str]]:
    """``(select expression, column name)`` of each of the file's columns: the file's name is
    always quoted; a name that is not a plain identifier (``customer id``) is renamed
    (``customer_id``), a keyword gets a ``_`` (``order_``) and a name another column already
    has (DuckDB's names ignore case) a number (``customer_id_2``), so the contract's columns
    are distinct SQL names."""
    taken: set[str] = set()
    renamed: list[tuple[str, str]] = []
    for name in names:
        alias = name
        if not _IDENTIFIER.match(alias):
            alias = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_").lower() or "column"
            alias = alias if alias[0].isalpha() or alias[0] == "_" else f"c_{alias}"
        if alias.lower() in _keywords():
            alias = f"{alias}_"
        base, number = alias, 2
        while alias.lower() in taken:
            alias, number = f"{base}_{number}", number + 1
        taken.add(alias.lower())
        quoted = '"' + name.replace('"', '""') + '"'
        renamed.append((quoted if alias == name else f"{quoted} as {alias}", alias))
    return renamed


def scaffold_from_file(
    paths: ProjectPaths,
    product_id: str,
    domain: str,
    file: Path,
    *,
    owner: str | None = None,
    port: str | None = None,
    model: str | None = None,
) -> list[Path]:
    """Write a product over ``file`` (see the module); return the files written."""
    file = file.resolve()
    file_format = FORMATS.get(file.suffix.lower())
    if not file.exists():
        raise _problem(
            f"{file} does not exist",
            "check the path (relative to the current folder), "
            "e.g. --from-file data/landing/returns/returns.csv",
        )
    if not file.is_file() or file_format is None:
        raise _problem(
            f"{file} is not a CSV, Parquet or JSON file",
            "e.g. --from-file data/landing/returns/returns.csv",
        )
    if not file.read_bytes()[:4096].strip():
        raise _problem(
            f"{file} is empty: there is no header to read the columns from",
            "give a file with a header line and at least one row",
        )
    columns = file_columns(file, file_format)
    stem = re.sub(r"[^a-z0-9_]+", "_", file.stem.lower()).strip("_") or "file"
    input_port = f"raw_{stem}" if not stem.startswith("raw") else stem
    port = port or product_id
    model = model or port
    written = scaffold_product(paths, product_id, domain, owner, port=port, model=model)
    folder = paths.defs_dir / domain / product_id
    landing = paths.landing_dir.resolve()
    if landing in file.parents:
        folder_in_landing = file.parent.relative_to(landing).as_posix()  # "." at the root
        pattern = f"*{file.suffix.lower()}"
        pattern = pattern if folder_in_landing == "." else f"{folder_in_landing}/{pattern}"
    else:
        destination = landing / product_id / input_port / file.name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, destination)
        written.append(destination)
        pattern = f"{product_id}/{input_port}/*{file.suffix.lower()}"
    spec = folder / "defs.yaml"
    text = spec.read_text(encoding="utf-8")
    port_yaml = (
        "  input_ports:\n"
        f"    - name: {input_port}\n"
        "      type: file\n"
        f'      path: "{pattern}"\n'
        f"      format: {file_format}\n"
        f"      description: The landing file {file.name} and others like it.\n"
    )
    text = text.replace("  input_ports: []\n", port_yaml, 1)
    spec.write_text(text.replace("  tags: []\n", "  tags: [source-aligned]\n", 1), "utf-8")
    renamed = [
        (expression, alias, kind)
        for (expression, alias), (_, kind) in zip(
            _renamed([name for name, _ in columns]), columns, strict=True
        )
    ]
    select = ",\n".join(f"    {expression}" for expression, _, _ in renamed)
    (folder / "models" / f"{model}.sql").write_text(
        f"-- The model behind the output port '{port}': every column of the landing file\n"
        f"-- {file.name} (types read by DuckDB). Rename, cast and filter here.\n"
        f"select\n{select}\nfrom {{{{ source('{product_id}', '{input_port}') }}}}\n",
        encoding="utf-8",
    )
    facts = ObjectFacts(
        model=model,
        description=f"One row of the landing file {file.name}.",
        columns=[
            ColumnFacts(name=name, physical_type=physical_type(kind)) for _, name, kind in renamed
        ],
    )
    (folder / "contracts" / f"{port}.odcs.yaml").write_text(
        contract_text(
            contract_id=f"urn:ddp:{domain}:{product_id}:{port}",
            name=port.replace("_", " ").title(),
            version="0.1.0",
            domain=domain,
            product=product_id,
            obj=facts,
            header=(
                f"# Written by `ddp new --from-file` from the columns of {file.name}.\n"
                f"# `ddp contract infer {product_id} {port}` refreshes it from the built "
                "relation\n# and keeps what you write here.\n"
            ),
        ),
        encoding="utf-8",
    )
    return written
