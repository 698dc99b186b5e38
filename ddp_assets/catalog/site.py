"""``ddp catalog build OUTDIR``: a static web catalog of every product.

Plain HTML and CSS with a little inline JavaScript for search and filters; the data is
embedded in the pages, so the catalog works opened straight from disk (``file://``), on any
static host, or behind the Dagster UI's links (:func:`ddp_assets.settings.catalog_url`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import Any

from ddp_assets.catalog.svg import Node, dag_svg
from ddp_assets.lineage.graph import LineageGraph
from ddp_assets.settings import catalog_page

_CSS = """
:root { --ink: #1d2733; --muted: #5b6b7c; --line: #d6dde5; --accent: #1f4e79; }
* { box-sizing: border-box; }
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; color: var(--ink);
  margin: 0; background: #f7f9fb; }
header { background: var(--accent); color: white; padding: 14px 28px; }
header a { color: white; text-decoration: none; }
main { padding: 20px 28px; max-width: 1200px; }
h1 { margin: 0; font-size: 22px; } h2 { font-size: 18px; margin-top: 28px; }
.filters { display: flex; gap: 10px; flex-wrap: wrap; margin-bottom: 16px; }
.filters input, .filters select { padding: 7px 9px; border: 1px solid var(--line);
  border-radius: 6px; font-size: 14px; }
.filters input { flex: 1; min-width: 260px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(330px, 1fr)); gap: 14px; }
.card { background: white; border: 1px solid var(--line); border-radius: 10px; padding: 14px; }
.card h3 { margin: 0 0 6px 0; font-size: 16px; } .card a { color: var(--accent); }
.meta { color: var(--muted); font-size: 13px; }
.tag { display: inline-block; background: #e8eef5; border-radius: 10px; padding: 1px 8px;
  margin: 2px 3px 0 0; font-size: 12px; }
.pill-ok { background: #d9f0dc; } .pill-bad { background: #f8d7d7; }
.pill-none { background: #eee; }
table { border-collapse: collapse; background: white; margin: 8px 0 16px 0; width: 100%; }
th, td { border: 1px solid var(--line); padding: 6px 9px; text-align: left; font-size: 13px;
  vertical-align: top; }
th { background: #eef2f6; }
.lineage { background: white; border: 1px solid var(--line); border-radius: 10px; padding: 8px;
  overflow-x: auto; }
.lineage img { max-width: 100%; height: auto; }
#count { color: var(--muted); font-size: 13px; margin-bottom: 10px; }
"""

_SEARCH_JS = """
const entries = JSON.parse(document.getElementById('catalog-data').textContent);
const q = document.getElementById('q'), domain = document.getElementById('domain'),
  owner = document.getElementById('owner'), tag = document.getElementById('tag');
function haystack(e) {
  const cols = e.columns.join(' ');
  return [e.id, e.name, e.domain, e.tags.join(' '), e.owners.join(' '),
    e.ports.join(' '), cols, e.text].join(' ').toLowerCase();
}
function apply() {
  const words = q.value.toLowerCase().split(/\\s+/).filter(Boolean);
  let shown = 0;
  for (const e of entries) {
    const text = haystack(e);
    const ok = words.every(w => text.includes(w))
      && (!domain.value || e.domain === domain.value)
      && (!owner.value || e.owners.includes(owner.value))
      && (!tag.value || e.tags.includes(tag.value));
    document.getElementById('card-' + e.id).style.display = ok ? '' : 'none';
    if (ok) shown++;
  }
  document.getElementById('count').textContent = shown + ' of ' + entries.length + ' products';
}
for (const el of [q, domain, owner, tag]) el.addEventListener('input', apply);
apply();
"""


def _page(title: str, body: str, *, depth: int = 0, script: str = "") -> str:
    prefix = "../" * depth
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)}</title>"
        f"<link rel='stylesheet' href='{prefix}style.css'></head><body>"
        f"<header><h1><a href='{prefix}index.html'>Data product catalog</a></h1></header>"
        f"<main>{body}</main>{script}</body></html>\n"
    )


def _status_pill(status: Mapping[str, Any] | None) -> str:
    if not status or not status.get("materialized"):
        return "<span class='tag pill-none'>never materialized</span>"
    checks = status.get("checks") or {}
    state = checks.get("status", "no checks")
    css = {"passing": "pill-ok", "failing": "pill-bad"}.get(state, "pill-none")
    at = status["last_materialization"]["at"]
    return (
        f"<span class='tag {css}'>checks {escape(state)}"
        f" ({checks.get('passed', 0)}/{checks.get('total', 0)})</span>"
        f" <span class='meta'>last materialized {escape(at)}</span>"
    )


def _index(entries: list[dict[str, Any]], statuses: Mapping[str, Any], overview: str) -> str:
    data = [
        {
            "id": e["id"],
            "name": e["name"],
            "domain": e["domain"],
            "owners": e["owners"],
            "tags": e["tags"],
            "ports": [p["name"] for p in e["output_ports"]],
            "columns": e["columns"],
            "text": " ".join(str(v) for v in e["description"].values()),
        }
        for e in entries
    ]

    def options(values: set[str]) -> str:
        return "".join(f"<option value='{escape(v)}'>{escape(v)}</option>" for v in sorted(values))

    cards = []
    for e in entries:
        tags = "".join(f"<span class='tag'>{escape(t)}</span>" for t in e["tags"])
        cards.append(
            f"<div class='card' id='card-{escape(e['id'])}'>"
            f"<h3><a href='{escape(catalog_page(e['id']))}'>{escape(e['name'])}</a></h3>"
            f"<div class='meta'>{escape(e['id'])} · {escape(e['domain'])} · v{escape(e['version'])}"
            f" · {escape(e['status'])} · {escape(e['tier'])}</div>"
            f"<p>{escape(e['description'].get('purpose', ''))}</p>"
            f"<div class='meta'>owners: {escape(', '.join(e['owners']))}</div>"
            f"<div class='meta'>ports: {escape(', '.join(p['name'] for p in e['output_ports']))}"
            f"</div><div>{tags}</div><div>{_status_pill(statuses.get(e['id']))}</div></div>"
        )
    domains = {e["domain"] for e in entries}
    owners = {o for e in entries for o in e["owners"]}
    tags = {t for e in entries for t in e["tags"]}
    body = (
        "<div class='filters'>"
        "<input id='q' type='search' placeholder='Search products, ports, columns, owners…' "
        "aria-label='search'>"
        f"<select id='domain' aria-label='domain'><option value=''>all domains</option>"
        f"{options(domains)}</select>"
        f"<select id='owner' aria-label='owner'><option value=''>all owners</option>"
        f"{options(owners)}</select>"
        f"<select id='tag' aria-label='tag'><option value=''>all tags</option>{options(tags)}"
        "</select></div><div id='count'></div>"
        f"<div class='cards'>{''.join(cards)}</div>"
        f"<h2>Product lineage</h2><div class='lineage'><img src='lineage.svg' "
        f"alt='lineage of every product'></div>{overview}"
    )
    script = (
        "<script id='catalog-data' type='application/json'>"
        + json.dumps(data).replace("</", "<\\/")
        + f"</script><script>{_SEARCH_JS}</script>"
    )
    return _page("Data product catalog", body, script=script)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _access(entry: dict[str, Any]) -> str:
    """Who may read the ports (the spec's grants, then approved requests') and how to ask."""
    e = escape
    grants = [{**g, "source": "spec"} for g in entry.get("policies", {}).get("grants", [])]
    grants += entry.get("access_grants", [])  # approved requests (ddp_assets.ports.access)
    rows = [
        [
            e(g["to"]),
            e(", ".join(g["ports"])),
            e(" and ".join(f"{c['column']} {c['op']} {c['value']}" for c in g["rows"]) or "all"),
            e(", ".join(g["cleared_for"]) or "-"),
            e(g["source"] + (f" until {g['until']}" if g.get("until") else "")),
        ]
        for g in grants
    ]
    pid, port = e(entry["id"]), e((entry["output_ports"] or [{"name": "PORT"}])[0]["name"])
    return (
        _table(["to", "ports", "rows", "in clear", "granted by"], rows)
        + "<p id='request-access'><b>Request access:</b> "
        f"<code>ddp access request {pid} {port} --consumer YOU --purpose '...'</code> "
        "(add <code>--columns</code>, <code>--clearance</code>, <code>--until</code>), or "
        f'<code>POST /access/requests {{"product": "{pid}", "purpose": "..."}}</code> '
        "on the REST port with your token, or the MCP tool <code>request_access</code>. The "
        "owners are notified and decide.</p>"
    )


def _versions(entry: dict[str, Any]) -> str:
    """Each output port's published versions (``ddp versions``): contract, audit, moves."""
    e = escape
    parts = []
    for port, listed in sorted((entry.get("versions") or {}).items()):
        rows = []
        for v in reversed(listed):
            audit = v.get("audit")
            audited = (
                "-"
                if audit is None
                else f"passed {e(str(audit['audited_at']))}"
                if audit["passed"]
                else f"<b>failed</b>: {e(', '.join(audit['failed_checks']))}"
            )
            moved = "; ".join(
                f"{m['action']} {m['at']}"
                + (f" by {m['actor']}" if m["action"] != "publish" and m["actor"] else "")
                + (f" ({m['reason']})" if m["reason"] else "")
                for m in v["moves"]
            )
            state = f"<b>{e(v['state'])}</b>" if v["state"] == "published" else e(v["state"])
            if v.get("pinned_by"):
                state += f" (pinned by {e(', '.join(v['pinned_by']))})"
            rows.append(
                [
                    f"v{v['version']}",
                    e(str(v["product_version"])),
                    e(f"{v['contract_id']} {v['contract_version']}"),
                    e(str(v["rows"])),
                    e(v["published_at"]),
                    state,
                    audited,
                    e(moved),
                ]
            )
        headers = ["version", "product version", "contract", "rows", "published at"]
        headers += ["state", "audit", "moves"]
        parts.append(f"<h3>{e(port)}</h3>" + _table(headers, rows))
    return "".join(parts) or "<p class='meta'>no published version yet</p>"


def _product_page(entry: dict[str, Any], status: Mapping[str, Any] | None) -> str:
    pid = entry["id"]
    e = escape
    description = "".join(
        f"<p><b>{e(k.capitalize())}:</b> {e(str(v))}</p>" for k, v in entry["description"].items()
    )
    inputs = _table(
        ["port", "type", "reads"],
        [
            [
                e(p["name"]),
                e(p["type"]),
                (
                    f"<a href='{e(p['product'].split('.')[0])}.html'>{e(p['product'])}</a>"
                    if p.get("product")
                    else e(p.get("path") or p.get("table") or "")
                ),
            ]
            for p in entry["input_ports"]
        ],
    )
    outputs = _table(
        ["port", "relation", "type", "description"],
        [
            [
                e(p["name"]),
                f"<code>{e(p['relation'])}</code>",
                e(p["type"]),
                e(p["description"] or ""),
            ]
            for p in entry["output_ports"]
        ],
    )
    contracts = []
    for table in entry["contracts"]:
        rows = [
            [
                f"<code>{e(c['name'])}</code>",
                e(c["type"]),
                e(", ".join(c["rules"])),
                e(c.get("description") or ""),
            ]
            for c in table["columns"]
        ]
        rules = "".join(f"<li>{e(r)}</li>" for r in table["rules"])
        contracts.append(
            f"<h3>{e(table['port'])} <span class='meta'>{e(table['contract_id'] or '')} "
            f"v{e(table['contract_version'] or '?')} · {e(table['contract_file'])}</span></h3>"
            + _table(["column", "type", "rules", "description"], rows)
            + (f"<div class='meta'>table rules:</div><ul>{rules}</ul>" if rules else "")
        )
    slos = entry["slos"]
    slo_rows = [
        [e(k), e(json.dumps(v) if isinstance(v, dict) else str(v))] for k, v in slos.items()
    ]
    status_html = _status_pill(status)
    if status and status.get("materialized"):
        last = status["last_materialization"]
        checks = status.get("checks") or {}
        status_html += (
            f"<p class='meta'>run {e(last['run_id'])} ({e(str(last['run_status']))}), "
            f"{last['assets']} of {last['of_assets']} assets materialized</p>"
        )
        if checks.get("results"):
            status_html += _table(
                ["asset", "check", "result", "severity"],
                [
                    [
                        e(c["asset"]),
                        e(c["check"]),
                        "passed" if c["passed"] else "<b>failed</b>",
                        e(c["severity"]),
                    ]
                    for c in checks["results"]
                ],
            )
    neighbours = (
        "<p>upstream: "
        + (", ".join(f"<a href='{e(u)}.html'>{e(u)}</a>" for u in entry["upstream"]) or "-")
        + "<br>downstream: "
        + (", ".join(f"<a href='{e(d)}.html'>{e(d)}</a>" for d in entry["downstream"]) or "-")
        + "</p>"
    )
    body = (
        f"<h1>{e(entry['name'])} <span class='meta'>({e(pid)}) v{e(entry['version'])}</span></h1>"
        f"<p class='meta'>domain <b>{e(entry['domain'])}</b> · status {e(entry['status'])} · tier "
        f"{e(entry['tier'])} · owners {e(', '.join(entry['owners']))} · tags "
        f"{e(', '.join(entry['tags']))}</p>"
        f"<h2>Purpose</h2>{description}"
        f"<h2>Status</h2><div id='status'>{status_html}</div>"
        f"<h2>Lineage</h2>{neighbours}<div class='lineage'>"
        f"<img id='lineage' src='{e(pid)}.lineage.svg' alt='lineage of {e(pid)}'></div>"
        f"<div class='lineage'><img src='{e(pid)}.tables.svg' alt='table lineage of {e(pid)}'>"
        "</div>"
        f"<h2>Output ports</h2>{outputs}"
        f"<h2>Versions</h2>{_versions(entry)}"
        f"<h2>Access</h2>{_access(entry)}"
        f"<h2>Contracts</h2>{''.join(contracts)}"
        f"<h2>Input ports</h2>{inputs}"
        f"<h2>SLOs</h2>{_table(['slo', 'value'], slo_rows)}"
        f"<p class='meta'>spec: {e(entry['spec_file'])}</p>"
    )
    return _page(f"{entry['name']} — data product", body, depth=1)


def product_svg(graph: LineageGraph, product: str) -> str:
    edges = graph.neighbourhood(product)
    ids = {product} | {x.upstream for x in edges} | {x.downstream for x in edges}
    nodes = [Node(pid, pid, "focus" if pid == product else "product", f"{pid}.html") for pid in ids]
    return dag_svg(
        nodes, [(x.upstream, x.downstream, x.port) for x in edges], f"products around {product}"
    )


def _short(name: str) -> str:
    """A dataset's label: a file's name, a table's ``schema.table``."""
    if name.startswith("/"):
        return name.rsplit("/", 1)[-1]
    parts = name.split(".")
    return ".".join(parts[1:]) if len(parts) == 3 else name


def tables_svg(graph: LineageGraph, product: str) -> str:
    assets = graph.for_product(product)
    nodes: dict[str, Node] = {}
    for asset in assets:
        kind = "port" if asset.port else "table"
        nodes[asset.output.name] = Node(asset.output.name, _short(asset.output.name), kind)
    edges = graph.table_edges(product)
    for source, _ in edges:
        if source not in nodes:
            owner = next((a for a in graph.assets.values() if a.output.name == source), None)
            kind = "file" if source.startswith("/") else "product"
            href = f"{owner.product}.html" if owner and owner.product != product else None
            nodes[source] = Node(source, _short(source), kind, href)
    return dag_svg(list(nodes.values()), [(a, b, "") for a, b in edges], f"tables of {product}")


def overview_svg(graph: LineageGraph, products: list[str]) -> str:
    nodes = [Node(pid, pid, "product", catalog_page(pid)) for pid in products]
    edges = sorted({(x.upstream, x.downstream, "") for x in graph.product_edges})
    return dag_svg(nodes, edges, "every product (arrows: output ports read downstream)")


def build_site(
    outdir: Path,
    entries: list[dict[str, Any]],
    graph: LineageGraph,
    statuses: Mapping[str, Any],
) -> list[Path]:
    """Write the catalog; return the files written."""
    products_dir = outdir / "products"
    products_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def write(path: Path, text: str) -> None:
        path.write_text(text, encoding="utf-8")
        written.append(path)

    write(outdir / "style.css", _CSS)
    write(outdir / "lineage.svg", overview_svg(graph, [e["id"] for e in entries]))
    write(outdir / "index.html", _index(entries, statuses, ""))
    write(
        outdir / "catalog.json",
        json.dumps({"products": entries, "status": statuses}, indent=2, default=str),
    )
    for entry in entries:
        pid = entry["id"]
        write(products_dir / f"{pid}.lineage.svg", product_svg(graph, pid))
        write(products_dir / f"{pid}.tables.svg", tables_svg(graph, pid))
        write(products_dir / f"{pid}.html", _product_page(entry, statuses.get(pid)))
    return written
