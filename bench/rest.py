"""The REST port's speed: latency of a 100-row page, throughput, and what policies cost.

``python -m bench rest`` (or ``python -m bench.rest``) serves a built demo with ``ddp serve`` on
loopback and sends a bounded number of requests (``--requests``, stopped early by
``--seconds``):

- **page latency**: p50/p95/p99 of ``GET .../orders/ports/orders/rows?limit=100`` by one
  client on a kept-alive connection (target: p99 under 50 ms on 2 cores);
- **throughput**: the same request from ``--clients`` concurrent clients, requests per second;
- **policy cost**: the same customers page read by a consumer cleared for every column with
  no row filter, and by one whose policy hashes three columns and filters rows (through the
  server, p50 ratio), and the engine alone in-process (the page query on the serving
  snapshot, with masks and an all-rows filter against none, same rows returned).

Without ``--data-dir``, it generates and builds a demo (``--scale``) in a temporary folder.
Results: a table, and JSON under ``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench.common import REPO, RESULTS_DIR, machine_info, tool

TARGET_P99_MS = 50.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _stats(samples: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples]
    return {
        "n": len(ms),
        "p50_ms": round(_percentile(ms, 50), 2),
        "p95_ms": round(_percentile(ms, 95), 2),
        "p99_ms": round(_percentile(ms, 99), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
        "max_ms": round(max(ms), 2),
    }


def _ddp(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [tool("ddp"), *args], env=env, capture_output=True, text=True, cwd=REPO, check=False
    )
    if result.returncode:
        raise SystemExit(f"ddp {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def _timed(
    client: httpx.Client, url: str, headers: dict[str, str], n: int, until: float
) -> list[float]:
    samples = []
    for _ in range(n):
        if time.monotonic() > until:
            break
        started = time.perf_counter()
        response = client.get(url, headers=headers)
        samples.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise SystemExit(f"GET {url}: {response.status_code} {response.text[:300]}")
    return samples


def _engine_ratio(env: dict[str, str], repeat: int) -> dict[str, Any]:
    """In-process: the page query with 3 hashed columns and a row filter vs none."""
    code = f"""
import json, time, duckdb
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.registry import Registry
from ddp_assets.spec.model import RowCondition
from ddp_assets.ports.policy import Consumer, PortAccess, PortColumn, resolve
from ddp_assets.ports.reads import parse_request, read_page
from ddp_assets.ports.serving import serving_path, LOCKED_DOWN
paths = ProjectPaths.discover()
registry = Registry.load(paths.defs_dir, paths.root)
clear = resolve(registry.products["customers"], "customers", Consumer("b", ("crm",)))
masked = PortAccess(clear.product, clear.port, clear.model, clear.consumer,
    tuple(PortColumn(c.name, c.type, c.classification,
          "hash" if c.classification == "restricted" else None) for c in clear.columns),
    ((RowCondition(column="country", op="not_in", value=["ZZ", "XX"]),),), clear.primary_key)
con = duckdb.connect(str(serving_path(paths)), read_only=True, config=LOCKED_DOWN)
out = {{}}
for name, access in (("unmasked", clear), ("masked_filtered", masked)):
    request = parse_request(access, limit=100)
    rows = len(read_page(con, access, request, '"customers"."customers"', "salt").rows)
    samples = []
    for _ in range({repeat}):
        t = time.perf_counter()
        read_page(con, access, request, '"customers"."customers"', "salt")
        samples.append(time.perf_counter() - t)
    samples.sort()
    out[name] = {{"rows": rows, "p50_ms": round(samples[len(samples)//2] * 1000, 3)}}
print(json.dumps(out))
"""
    result = subprocess.run(
        [tool("python"), "-c", code], env=env, capture_output=True, text=True, cwd=REPO
    )
    if result.returncode:
        raise SystemExit(f"engine measurement failed:\n{result.stderr}")
    found = json.loads(result.stdout.strip().splitlines()[-1])
    found["ratio"] = round(found["masked_filtered"]["p50_ms"] / found["unmasked"]["p50_ms"], 2)
    return found


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench rest", description=(__doc__ or "").split("\n\n")[0]
    )
    p.add_argument("--data-dir", type=Path, help="a built demo's DDP_DATA_DIR (default: build one)")
    p.add_argument("--dagster-home", type=Path, help="its DAGSTER_HOME (with --data-dir)")
    p.add_argument("--scale", type=int, default=5000, help="demo scale when building one")
    p.add_argument("--requests", type=int, default=500, help="requests per measurement")
    p.add_argument("--seconds", type=float, default=30.0, help="time bound per measurement")
    p.add_argument("--clients", type=int, default=4, help="concurrent clients for throughput")
    p.add_argument("--name", default=None, help="results file name (bench/results/<name>.json)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 160)
    work = Path(tempfile.mkdtemp(prefix="ddp-bench-rest-"))
    data_dir = args.data_dir or work / "data"
    home = args.dagster_home or work / "home"
    env = {
        **os.environ,
        "DDP_DATA_DIR": str(data_dir),
        "DAGSTER_HOME": str(home),
        "DDP_PROJECT_ROOT": str(REPO),
    }
    results: dict[str, Any] = {
        "name": args.name or time.strftime("%Y%m%d-%H%M%S-rest"),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": machine_info(),
    }
    process = None
    try:
        if args.data_dir is None:
            console.print(f"building the demo at scale {args.scale} in {work} ...")
            _ddp(env, "demo", "--scale", str(args.scale))
            _ddp(env, "materialize", "--all")
        suffix = str(os.getpid())
        cleared = json.loads(
            _ddp(env, "token", "issue", f"bench-crm-{suffix}", "--role", "crm", "--json")
        )
        analyst = json.loads(
            _ddp(env, "token", "issue", f"bench-analyst-{suffix}", "--role", "analyst", "--json")
        )
        emea = json.loads(_ddp(env, "token", "issue", "emea-sales", "--json"))
        _ddp(env, "ports", "build")
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        process = subprocess.Popen(
            [tool("ddp"), "serve", "--port", str(port)],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with httpx.Client(timeout=30) as client:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if client.get(base + "/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("ddp serve did not start")
                time.sleep(0.3)

            def auth(token: dict[str, Any]) -> dict[str, str]:
                return {"Authorization": f"Bearer {token['token']}"}

            page = base + "/products/orders/ports/orders/rows?limit=100"
            first = client.get(page, headers=auth(analyst)).json()
            rows_per_page = len(first["rows"])
            _timed(client, page, auth(analyst), 20, time.monotonic() + 10)  # warm-up
            latency = _stats(
                _timed(client, page, auth(analyst), args.requests, time.monotonic() + args.seconds)
            )
            latency["rows_per_page"] = rows_per_page

            counts = [0] * args.clients
            stop = time.monotonic() + min(args.seconds, 10.0)
            budget = args.requests

            def worker(index: int) -> None:
                with httpx.Client(timeout=30) as own:
                    while time.monotonic() < stop and sum(counts) < budget:
                        own.get(page, headers=auth(analyst)).raise_for_status()
                        counts[index] += 1

            started = time.perf_counter()
            threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - started
            throughput = {
                "clients": args.clients,
                "requests": sum(counts),
                "seconds": round(elapsed, 2),
                "requests_per_second": round(sum(counts) / elapsed, 1),
            }

            customers = base + "/products/customers/ports/customers/rows?limit=50"
            policy: dict[str, Any] = {}
            for label, token in (("unmasked", cleared), ("masked_filtered", emea)):
                _timed(client, customers, auth(token), 20, time.monotonic() + 10)
                stats = _stats(
                    _timed(
                        client,
                        customers,
                        auth(token),
                        args.requests,
                        time.monotonic() + args.seconds,
                    )
                )
                stats["rows_per_page"] = len(
                    client.get(customers, headers=auth(token)).json()["rows"]
                )
                policy[label] = stats
            policy["ratio_p50"] = round(
                policy["masked_filtered"]["p50_ms"] / policy["unmasked"]["p50_ms"], 2
            )
        results["latency_100_rows"] = latency
        results["throughput"] = throughput
        results["policy_http"] = policy
        results["policy_engine"] = _engine_ratio(env, 200)
        results["targets"] = {
            "p99_under_50ms": {
                "value_ms": latency["p99_ms"],
                "ok": latency["p99_ms"] < TARGET_P99_MS,
            }
        }
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        if args.data_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    results["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    _print(results, console)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{results['name']}.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    console.print(f"results: {path}")
    return 0


def _print(results: dict[str, Any], console: Console) -> None:
    table = Table("measure", "n", "p50 ms", "p95 ms", "p99 ms", "rows/page", title="REST port")
    lat = results["latency_100_rows"]
    table.add_row(
        "orders page (analyst)",
        str(lat["n"]),
        str(lat["p50_ms"]),
        str(lat["p95_ms"]),
        str(lat["p99_ms"]),
        str(lat["rows_per_page"]),
    )
    for label in ("unmasked", "masked_filtered"):
        s = results["policy_http"][label]
        table.add_row(
            f"customers page, {label}",
            str(s["n"]),
            str(s["p50_ms"]),
            str(s["p95_ms"]),
            str(s["p99_ms"]),
            str(s["rows_per_page"]),
        )
    console.print(table)
    t = results["throughput"]
    console.print(
        f"throughput: {t['requests_per_second']} req/s ({t['clients']} clients, "
        f"{t['requests']} requests in {t['seconds']} s)"
    )
    engine = results["policy_engine"]
    console.print(
        f"policy cost: through the server {results['policy_http']['ratio_p50']}x p50; "
        f"engine alone {engine['ratio']}x ({engine['masked_filtered']['p50_ms']} ms vs "
        f"{engine['unmasked']['p50_ms']} ms for {engine['unmasked']['rows']} rows)"
    )
    ok = results["targets"]["p99_under_50ms"]
    verdict = "[green]met[/green]" if ok["ok"] else "[red]missed[/red]"
    console.print(f"target p99 < 50 ms for a 100-row page: {verdict} ({ok['value_ms']} ms)")
    console.print(f"load average at end: {results['machine']['loadavg_at_end']}")


if __name__ == "__main__":
    sys.exit(main())
