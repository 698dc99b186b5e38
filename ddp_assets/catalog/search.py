"""Searching products by text, domain, owner, tag and column name."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# how much a match in each field counts
_WEIGHTS = {
    "id": 10,
    "name": 8,
    "tag": 6,
    "domain": 5,
    "port": 4,
    "owner": 4,
    "column": 3,
    "description": 1,
}


@dataclass
class SearchHit:
    product: str
    score: int
    matches: list[str] = field(default_factory=list)
    entry: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        entry = self.entry
        return {
            "id": self.product,
            "name": entry.get("name"),
            "domain": entry.get("domain"),
            "owners": entry.get("owners"),
            "tags": entry.get("tags"),
            "status": entry.get("status"),
            "version": entry.get("version"),
            "purpose": (entry.get("description") or {}).get("purpose"),
            "score": self.score,
            "matches": self.matches,
        }


def _fields(entry: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    yield "id", entry["id"]
    yield "name", entry.get("name") or ""
    yield "domain", entry.get("domain") or ""
    for tag in entry.get("tags", []):
        yield "tag", tag
    for owner in entry.get("owners", []):
        yield "owner", owner
    for port in entry.get("output_ports", []):
        yield "port", port["name"]
    for table in entry.get("contracts", []):
        for column in table.get("columns", []):
            yield "column", f"{table['port']}.{column['name']}"
    for value in (entry.get("description") or {}).values():
        yield "description", str(value)


def _matches(kind: str, value: str, token: str) -> bool:
    value = value.lower()
    if kind == "column":
        return token in value.split(".", 1)[1]
    return token in value


def search(
    entries: Iterable[Mapping[str, Any]],
    query: str | None = None,
    *,
    domain: str | None = None,
    owner: str | None = None,
    tag: str | None = None,
) -> list[SearchHit]:
    """Products matching every word of ``query`` (anywhere) and every filter, best first."""
    tokens = [t for t in (query or "").lower().split() if t]
    hits: list[SearchHit] = []
    for entry in entries:
        if domain and entry.get("domain", "").lower() != domain.lower():
            continue
        if owner and not any(owner.lower() in o.lower() for o in entry.get("owners", [])):
            continue
        if tag and tag.lower() not in [t.lower() for t in entry.get("tags", [])]:
            continue
        score = 0
        matched: list[str] = []
        for token in tokens:
            found = [(k, v) for k, v in _fields(entry) if _matches(k, v, token)]
            if not found:
                break
            score += max(_WEIGHTS[k] for k, _ in found)
            for kind, value in found:
                label = "description" if kind == "description" else f"{kind}: {value}"
                if label not in matched:
                    matched.append(label)
        else:
            hits.append(SearchHit(entry["id"], score, matched[:8], entry))
    return sorted(hits, key=lambda h: (-h.score, h.product))
