"""The report of ``ddp ci``: text, Markdown (a pull-request comment), JUnit XML and JSON.

JUnit XML is written by junitparser (a maintained library that writes and reads the format
Jenkins, GitLab, GitHub test reporters and Azure read): one suite ``validate`` with a test per
product (and one for the project's other files), one suite ``contracts`` with a test per changed
contract, one suite ``changes`` with a test per changed or downstream product (informative:
they pass).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from junitparser import Failure, JUnitXml, TestCase, TestSuite

from ddp_assets.ci.changes import Base, Changes
from ddp_assets.ci.impact import PortImpact
from ddp_assets.spec.errors import SpecProblem

# A pull-request comment holds at most 65,536 characters: long lists are cut.
_MAX_ROWS = 50
# Characters XML 1.0 cannot carry (a parser rejects the whole file): written as escapes.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass
class Preview:
    """``ddp ci --env NAME``: the changed products and their downstream built in environment
    NAME; every other product read from its base through views (zero copies)."""

    env: str
    based_on: str
    created: bool  # the environment was created for this preview
    built: list[str]
    read_from_base: list[str]  # product.port read through a view over the base's version
    succeeded: bool = True
    errors: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "based_on": self.based_on,
            "created": self.created,
            "built": self.built,
            "read_from_base": self.read_from_base,
            "zero_copies": True,
            "succeeded": self.succeeded,
            "errors": self.errors,
            "failed_checks": self.failed_checks,
            "runs": self.runs,
            "seconds": round(self.seconds, 3),
        }

    def lines(self) -> list[str]:
        built = ", ".join(self.built) or "nothing (no product changed)"
        out = [
            f"preview in environment '{self.env}'"
            + (f" (created from '{self.based_on}')" if self.created else "")
            + f": built {built}"
            + ("" if self.succeeded else ": FAILED"),
            f"read from '{self.based_on}' with zero copies (views over its published versions): "
            + (_listed(self.read_from_base) if self.read_from_base else "nothing"),
        ]
        out += [f"  error: {e}" for e in self.errors]
        out += [f"  failed check: {c}" for c in self.failed_checks]
        return out


@dataclass
class CiReport:
    base: Base
    folders: dict[str, str]  # product id → its folder, relative to the project root
    problems: list[SpecProblem]
    changes: Changes
    impacts: list[PortImpact]
    allow_major: bool = False
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    preview: Preview | None = None

    # -- verdicts -----------------------------------------------------------------------------

    @property
    def errors(self) -> list[SpecProblem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[SpecProblem]:
        return [p for p in self.problems if p.severity != "error"]

    def fails(self, impact: PortImpact) -> bool:
        """A breaking change fails, unless ``--allow-major`` and its contract got a new major
        version (a removed port: unless no product reads it)."""
        diff = impact.diff
        if not diff.breaking:
            return False
        if not self.allow_major:
            return True
        if diff.old_version is None:  # the port was removed
            return bool(impact.readers or diff.downstream)
        return diff.unbumped

    @property
    def breaking(self) -> list[PortImpact]:
        return [i for i in self.impacts if i.diff.breaking]

    @property
    def failing(self) -> list[PortImpact]:
        return [i for i in self.impacts if self.fails(i)]

    @property
    def ok(self) -> bool:
        preview_failed = self.preview is not None and not self.preview.succeeded
        return not self.errors and not self.failing and not preview_failed

    @property
    def unchanged(self) -> bool:
        return not self.changes.files

    def summary(self) -> str:
        if self.ok:
            verdict = "passed"
        else:
            parts = []
            if self.errors:
                parts.append(f"{len(self.errors)} error(s)")
            if self.failing:
                parts.append(f"{len(self.failing)} breaking contract change(s)")
            if self.preview is not None and not self.preview.succeeded:
                parts.append(f"the preview in '{self.preview.env}' failed")
            verdict = "FAILED: " + ", ".join(parts)
        changed = (
            "no changes"
            if self.unchanged
            else f"{len(self.changes.products)} changed product(s), "
            f"{len(self.changes.downstream)} downstream"
        )
        return f"ddp ci {verdict} ({changed} since {self.base.ref})"

    def _owner(self, problem: SpecProblem) -> str | None:
        for pid, folder in self.folders.items():
            if problem.file == folder or problem.file.startswith(folder.rstrip("/") + "/"):
                return pid
        return None

    # -- JSON ---------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "summary": self.summary(),
            "base": self.base.to_dict(),
            "seconds": round(self.seconds, 3),
            "validate": {
                "valid": not self.errors,
                "products": sorted(self.folders),
                "errors": len(self.errors),
                "warnings": len(self.warnings),
                "problems": [p.to_dict() for p in self.problems],
            },
            "changes": self.changes.to_dict(),
            "contracts": [{**i.to_dict(), "fails": self.fails(i)} for i in self.impacts],
            "breaking": [f"{i.diff.product}.{i.diff.port}" for i in self.breaking],
            "allow_major": self.allow_major,
            "notes": self.notes,
            **({"preview": self.preview.to_dict()} if self.preview is not None else {}),
        }

    # -- text ---------------------------------------------------------------------------------

    def text(self) -> str:
        lines = [f"base: {self.base.ref} ({self.base.commit[:12]}; {self.base.how})"]
        for problem in self.problems:
            lines.append(problem.format())
        lines.append(
            f"validate: {len(self.folders)} product(s), {len(self.errors)} error(s), "
            f"{len(self.warnings)} warning(s)"
        )
        if self.unchanged:
            lines.append(f"no changes since {self.base.ref}")
        for pid, why in sorted(self.changes.products.items()):
            lines.append(f"changed: {pid} ({_listed(why)})")
        for pid, via in sorted(self.changes.downstream.items()):
            lines.append(f"downstream: {pid} (reads {via})")
        for pid in self.changes.removed_products:
            lines.append(f"removed product: {pid}")
        if self.changes.other_files:
            lines.append(f"other changed files: {_listed(self.changes.other_files)}")
        for impact in self.impacts:
            diff = impact.diff
            lines.append(
                f"contract {diff.product}.{diff.port} ({diff.contract_file}, {diff.perspective}): "
                f"{_versions(impact)}"
            )
            lines.extend(f"  {c.format()}" for c in diff.changes)
            for reader in impact.readers:
                state = "affected" if reader.affected else "not affected"
                lines.append(f"  {state}: {reader.product}.{reader.input_port}: {reader.why}")
            for pid, via in sorted(impact.transitive.items()):
                lines.append(f"  transitively affected: {pid} (reads {via})")
            if self.fails(impact):
                lines.append(f"  fails: {_why_fails(impact, self.allow_major)}")
        if self.preview is not None:
            lines.extend(self.preview.lines())
        lines.extend(self.notes)
        lines.append(self.summary())
        return "\n".join(lines) + "\n"

    # -- Markdown -----------------------------------------------------------------------------

    def markdown(self) -> str:
        mark = "✅" if self.ok else "❌"
        out = [
            f"## {mark} {_cell(self.summary())}",
            "",
            f"Base: `{self.base.ref}` (`{self.base.commit[:12]}`, {self.base.how}). "
            f"{len(self.folders)} product(s) validated in {self.seconds:.1f} s.",
            "",
        ]
        if self.problems:
            out += [
                f"### Validation: {len(self.errors)} error(s), {len(self.warnings)} warning(s)",
                "",
                "| where | severity | field | problem | hint |",
                "|---|---|---|---|---|",
            ]
            for p in self.problems[:_MAX_ROWS]:
                where = p.file if p.line is None else f"{p.file}:{p.line}"
                out.append(
                    f"| `{_cell(where)}` | {p.severity} | `{_cell(p.field)}` | "
                    f"{_cell(p.message)} | {_cell(p.hint or '')} |"
                )
            out += [*_more(self.problems), ""]
        if self.unchanged:
            out += [f"No changes since `{self.base.ref}`.", ""]
        if self.breaking or self.failing:
            out += ["### Breaking contract changes", ""]
            for impact in self.breaking:
                out += self._markdown_impact(impact)
        compatible = [i for i in self.impacts if not i.diff.breaking]
        if compatible:
            out += ["### Compatible contract changes", ""]
            for impact in compatible:
                out += self._markdown_impact(impact)
        if self.changes.products:
            out += ["### Changed products", "", "| product | what changed |", "|---|---|"]
            for pid, why in sorted(self.changes.products.items())[:_MAX_ROWS]:
                out.append(f"| `{pid}` | {_cell(_listed(why))} |")
            out += [*_more(list(self.changes.products)), ""]
        if self.changes.downstream:
            out += ["### Downstream of the changes", "", "| product | reads |", "|---|---|"]
            for pid, via in sorted(self.changes.downstream.items())[:_MAX_ROWS]:
                out.append(f"| `{pid}` | `{via}` |")
            out += [*_more(list(self.changes.downstream)), ""]
        if self.changes.removed_products:
            removed = ", ".join(f"`{p}`" for p in self.changes.removed_products)
            out += [f"Removed products: {removed}", ""]
        if self.changes.other_files:
            out += [f"Other changed files: {_cell(_listed(self.changes.other_files))}", ""]
        if self.preview is not None:
            out += ["### Preview", ""]
            out += [f"- {_cell(line.strip())}" for line in self.preview.lines()]
            out.append("")
        out += [f"> {_cell(n)}" for n in self.notes]
        return "\n".join(out).rstrip() + "\n"

    def _markdown_impact(self, impact: PortImpact) -> list[str]:
        diff = impact.diff
        out = [
            f"#### `{diff.product}.{diff.port}` ({diff.perspective}) — `{diff.contract_file}`, "
            f"{_versions(impact)}",
            "",
            "| change | where | detail |",
            "|---|---|---|",
        ]
        for c in diff.changes[:_MAX_ROWS]:
            where = f"{c.object}.{c.column}" if c.column else c.object
            label = "**breaking**" if c.breaking else "compatible"
            out.append(f"| {label} | `{_cell(where)}` | {_cell(c.detail)} |")
        out += [*_more(diff.changes), ""]
        if impact.readers:
            out += ["| reader (product.input_port) | affected | why |", "|---|---|---|"]
            for r in impact.readers:
                out.append(
                    f"| `{r.product}.{r.input_port}` | {'**yes**' if r.affected else 'no'} | "
                    f"{_cell(r.why)} |"
                )
            out.append("")
        elif diff.breaking and diff.perspective == "producer":
            out += ["No product reads this port.", ""]
        elif diff.breaking:
            out += ["Data that passed the old contract of this input port may now be rejected.", ""]
        if impact.transitive:
            listed = ", ".join(f"`{k}` (reads `{v}`)" for k, v in sorted(impact.transitive.items()))
            out += [f"Transitively affected: {listed}", ""]
        if self.fails(impact):
            out += [f"**Fails:** {_cell(_why_fails(impact, self.allow_major))}", ""]
        return out

    # -- JUnit --------------------------------------------------------------------------------

    def junit(self) -> JUnitXml:
        xml = JUnitXml("ddp ci")
        validate = TestSuite("validate")
        by_product: dict[str, list[SpecProblem]] = {pid: [] for pid in sorted(self.folders)}
        project: list[SpecProblem] = []
        for problem in self.problems:
            owner = self._owner(problem)
            (by_product[owner] if owner else project).append(problem)
        for name, problems in [*by_product.items(), ("(project)", project)]:
            case = TestCase(name, classname="ddp.validate")
            errors = [p for p in problems if p.severity == "error"]
            if errors:
                failure = Failure(_xml(f"{len(errors)} error(s): {errors[0].message}"), "validate")
                failure.text = _xml("\n".join(p.format() for p in errors))
                case.result = [failure]
            warnings = [p for p in problems if p.severity != "error"]
            if warnings:
                case.system_out = _xml("\n".join(p.format() for p in warnings))
            validate.add_testcase(case)
        contracts = TestSuite("contracts")
        for impact in self.impacts:
            diff = impact.diff
            case = TestCase(
                f"{diff.product}.{diff.port}", classname=f"ddp.contracts.{diff.perspective}"
            )
            body = [c.format() for c in diff.changes] + [
                f"{'affected' if r.affected else 'not affected'}: {r.product}.{r.input_port}: "
                f"{r.why}"
                for r in impact.readers
            ]
            if self.fails(impact):
                failure = Failure(_xml(_why_fails(impact, self.allow_major)), "breaking")
                failure.text = _xml("\n".join(body))
                case.result = [failure]
            else:
                case.system_out = _xml("\n".join(body))
            contracts.add_testcase(case)
        changes = TestSuite("changes")
        for pid, why in sorted(self.changes.products.items()):
            case = TestCase(pid, classname="ddp.changes.changed")
            case.system_out = _xml("\n".join(why))
            changes.add_testcase(case)
        for pid, via in sorted(self.changes.downstream.items()):
            case = TestCase(pid, classname="ddp.changes.downstream")
            case.system_out = f"reads {via}"
            changes.add_testcase(case)
        suites = [validate, contracts, changes]
        if self.preview is not None:
            preview = TestSuite("preview")
            case = TestCase(self.preview.env, classname="ddp.preview")
            if not self.preview.succeeded:
                failure = Failure(_xml("the preview build failed"), "preview")
                failure.text = _xml("\n".join(self.preview.lines()))
                case.result = [failure]
            else:
                case.system_out = _xml("\n".join(self.preview.lines()))
            preview.add_testcase(case)
            suites.append(preview)
        for suite in suites:
            suite.update_statistics()
            xml.add_testsuite(suite)
        xml.update_statistics()
        xml.time = round(self.seconds, 3)
        return xml


def _xml(text: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _listed(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _more(items: list[Any]) -> list[str]:
    return [f"| … {len(items) - _MAX_ROWS} more |"] if len(items) > _MAX_ROWS else []


def _cell(text: str) -> str:
    """Text safe in a Markdown table cell: no pipes, no line breaks, no HTML."""
    return (
        text.replace("\\", "\\\\")
        .replace("|", "\\|")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("\r", " ")
        .replace("\n", " ")
    )


def _versions(impact: PortImpact) -> str:
    diff = impact.diff
    if diff.old_version is None:
        return "port removed"
    return f"{diff.old_version} → {diff.new_version}"


def _why_fails(impact: PortImpact, allow_major: bool) -> str:
    diff = impact.diff
    affected = ", ".join(impact.affected)
    if diff.old_version is None:
        return f"output port removed; read by {affected or ', '.join(diff.downstream) or 'none'}"
    if diff.perspective == "consumer":
        return "breaking change of an input contract: data that passed may now be rejected"
    why = "breaking change" + (" without a major version bump" if diff.unbumped else "")
    why += f"; affects {affected}" if affected else "; no reader uses what changed"
    if not diff.unbumped and not allow_major:
        why += " (the contract has a new major version: --allow-major accepts it)"
    return why
