"""The `make demo` tour: a real MCP client (the official Python SDK) talks to each tenant's
server with that tenant's token, asks the same questions, and shows what isolation looks like.

    python demo_tour.py --tenant NAME URL TOKEN [--tenant ...] [--via http://127.0.0.1:PORT] [--json OUT]

URL is the tenant's endpoint. With --via, requests go to that address instead (the ingress
controller on loopback) with the endpoint's host in the Host header, as if DNS pointed there.
Prints a readable tour; with --json also writes the results for the smoke test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

REVENUE_2025 = """SELECT s.store_name, round(sum(oi.total_amount))::bigint AS revenue_2025, count(DISTINCT o.order_id) AS orders
FROM retail.order_items oi
JOIN retail.orders o ON o.order_id = oi.order_id
JOIN retail.stores s ON s.store_id = oi.store_id
WHERE o.order_date >= DATE '2025-01-01' AND o.order_date < DATE '2026-01-01'
GROUP BY s.store_name ORDER BY revenue_2025 DESC"""

CROSS_TENANT = "SELECT count(*) AS seattle_orders FROM retail.orders o JOIN retail.stores s ON s.store_id = o.store_id WHERE s.store_name = 'Zava Retail Seattle'"
MAPPING = "SELECT * FROM tenancy.tenant_stores"


VIA: str | None = None


@asynccontextmanager
async def connect(url: str, token: str):
    headers = {"Authorization": f"Bearer {token}"}
    if VIA:
        endpoint, via = urlsplit(url), urlsplit(VIA)
        headers["Host"] = endpoint.netloc
        url = urlunsplit((via.scheme, via.netloc, endpoint.path, endpoint.query, ""))
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            yield client


async def sql(client, query: str) -> tuple[bool, dict]:
    r = await client.call_tool("execute_sales_query", {"postgresql_query": query})
    text = "".join(getattr(c, "text", "") for c in r.content)
    return bool(r.is_error), json.loads(text)


def table(result: dict) -> str:
    cols = result.get("c", [])
    rows = result.get("r", [])
    widths = [max(len(str(c)), *(len(f"{r[i]:,}" if isinstance(r[i], (int, float)) else str(r[i])) for r in rows)) if rows else len(str(c)) for i, c in enumerate(cols)]
    fmt = lambda v: f"{v:,}" if isinstance(v, (int, float)) else str(v)  # noqa: E731
    lines = ["    " + "  ".join(str(c).ljust(w) for c, w in zip(cols, widths))]
    lines += ["    " + "  ".join(fmt(v).ljust(w) for v, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tenant", nargs=3, action="append", metavar=("NAME", "URL", "TOKEN"), required=True)
    p.add_argument("--via", help="send requests here (the ingress), with the endpoint's Host header")
    p.add_argument("--json")
    a = p.parse_args()
    global VIA
    VIA = a.via
    out: dict = {"tenants": {}}

    first_name, first_url, first_token = a.tenant[0]
    async with connect(first_url, first_token) as c:
        tools = sorted(t.name for t in (await c.list_tools()).tools)
        out["tools"] = tools
        print(f"\n  Tools offered to {first_name}: {', '.join(tools)}")

    print("\n  Same question to every tenant: revenue in 2025 by store")
    for name, url, token in a.tenant:
        async with connect(url, token) as c:
            err, res = await sql(c, REVENUE_2025)
            total = sum(r[1] for r in res.get("r", [])) if not err else None
            out["tenants"][name] = {"revenue_2025": total, "stores": [r[0] for r in res.get("r", [])]}
            print(f"\n  [{name}] total {total:,} across {len(res.get('r', []))} store(s)")
            print(table(res))

    async with connect(first_url, first_token) as c:
        r = await c.call_tool("semantic_search_products", {"query_description": "something to water my vegetable garden", "max_rows": 3})
        res = json.loads("".join(getattr(x, "text", "") for x in r.content))
        names = [row[2] for row in res.get("r", [])]
        out["semantic"] = names
        print(f"\n  Semantic search for {first_name}: 'something to water my vegetable garden'")
        for n, row in zip(names, res.get("r", [])):
            print(f"    {n}  ({row[-1]}% similar)")

    last_name, last_url, last_token = a.tenant[-1]
    async with connect(last_url, last_token) as c:
        err, res = await sql(c, CROSS_TENANT)
        seen = None if err else res["r"][0][0]
        out["cross_tenant_rows"] = seen
        print(f"\n  [{last_name}] tries to count Seattle's orders: {seen} (row-level security in PostgreSQL)")
        err, res = await sql(c, MAPPING)
        out["mapping_refused"] = err
        print(f"  [{last_name}] tries to read the tenant mapping: {'refused - ' + res.get('err', '')[:100] if err else 'ALLOWED?!'}")
        err, res = await sql(c, "SELECT 1; DROP TABLE retail.orders")
        out["stacked_refused"] = err
        print(f"  [{last_name}] tries a stacked DROP: {'refused - ' + res.get('err', '')[:100] if err else 'ALLOWED?!'}")

    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    asyncio.run(main())
