"""The platform's dbt packages: declared once in ``dbt_project/packages.yml`` (or
``dependencies.yml``), installed by ``ddp prepare`` when the declarations changed.

``dbt_packages/`` is git-ignored, so a fresh clone, CI and a teammate's machine have none: the
first prepare runs ``dbt deps`` and leaves a stamp (:data:`STAMP`) of the declarations it
installed in ``dbt_packages/``. The stamp is one of prepare's inputs (its fingerprint), as are
the installed packages' files, so a changed ``packages.yml``, a removed ``dbt_packages/`` or an
edited local package makes the next prepare install (when needed) and parse again; an
unchanged project runs neither.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.errors import SpecErrors, SpecProblem, relative

DECLARATIONS = ("packages.yml", "dependencies.yml", "package-lock.yml")
STAMP = ".ddp_deps"
_PACKAGE_FILES = (".sql", ".yml", ".yaml", ".csv", ".md")


def _declared(dbt_dir: Path) -> bool:
    return any((dbt_dir / name).is_file() for name in DECLARATIONS[:2])


def _digest(dbt_dir: Path) -> str:
    digest = hashlib.sha256()
    for name in DECLARATIONS:
        try:
            digest.update(name.encode() + b"\0" + (dbt_dir / name).read_bytes() + b"\0")
        except OSError:
            continue
    return digest.hexdigest()


def package_inputs(paths: ProjectPaths) -> list[str]:
    """What prepare's fingerprint reads of the packages: the declarations, the stamp and the
    installed packages' files (a local package is a link dbt deps made: followed)."""
    dbt_dir = paths.dbt_dir
    found = [str(dbt_dir / name) for name in DECLARATIONS]
    installed = dbt_dir / "dbt_packages"
    found.append(str(installed / STAMP))
    for parent, dirs, files in os.walk(installed, followlinks=True):
        dirs[:] = [d for d in dirs if d not in ("target", "logs", "dbt_packages")]
        found.extend(os.path.join(parent, n) for n in files if n.endswith(_PACKAGE_FILES))
    return found


def install_packages(paths: ProjectPaths) -> bool:
    """Run ``dbt deps`` when the declared packages are not the installed ones; True when it ran.

    Raises :class:`SpecErrors` naming ``packages.yml`` with dbt's message when dbt deps fails.
    """
    dbt_dir = paths.dbt_dir
    if not _declared(dbt_dir):
        return False
    stamp = dbt_dir / "dbt_packages" / STAMP
    try:
        if stamp.read_text(encoding="utf-8") == _digest(dbt_dir):
            return False
    except OSError:
        pass
    from ddp_assets.dbt.project import dbt_env, dbt_executable  # it builds on this module

    result = subprocess.run(
        [
            dbt_executable(),
            "deps",
            "--project-dir",
            str(dbt_dir),
            "--profiles-dir",
            str(dbt_dir),
            "--no-use-colors",
            "--log-format",
            "text",
            "--no-send-anonymous-usage-stats",
        ],
        cwd=dbt_dir,
        env=dbt_env(paths),
        capture_output=True,
        text=True,
        check=False,
    )
    declared = next(dbt_dir / n for n in DECLARATIONS if (dbt_dir / n).is_file())
    if result.returncode != 0:
        lines = [line.strip() for line in (result.stdout + result.stderr).splitlines()]
        start = next((i for i, line in enumerate(lines) if "rror" in line), 0)
        message = "\n    ".join(line for line in lines[start : start + 8] if line)
        raise SpecErrors(
            [
                SpecProblem(
                    relative(declared, paths.root),
                    None,
                    "(dbt deps)",
                    message or "dbt deps failed",
                    "fix the package declarations (a local: path, a hub version range), "
                    "then run `ddp prepare` again",
                )
            ]
        )
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(_digest(dbt_dir), encoding="utf-8")  # after deps wrote its lock file
    return True
