"""End-to-end check of a running mcp-fleet server with the official MCP Python SDK.

Usage:
    python server_check.py --url-a URL --url-b URL --golden tools.json [--token-a T --token-b T]

Two servers serve two tenants with different stores. The script lists tools (compared with the
golden snapshot of names and input schemas), calls every tool, proves that the two tenants see
disjoint order data, and sends a table of bad inputs, checking that each gets a clear error and
that the next good call still works. It prints one line per check and exits non-zero on the first
failure, naming it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from contextlib import asynccontextmanager

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


def fail(msg: str) -> None:
    print(f"FAIL {msg}", flush=True)
    sys.exit(1)


def ok(msg: str) -> None:
    print(f"ok   {msg}", flush=True)


@asynccontextmanager
async def connect(url: str, token: str | None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            yield client


def text(result) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


async def call(client, tool: str, args: dict):
    result = await client.call_tool(tool, args)
    return bool(result.is_error), text(result)


GOOD_QUERY = {"postgresql_query": "SELECT count(*) AS n FROM retail.stores"}

BAD_QUERIES = [
    ("write", "DELETE FROM retail.orders"),
    ("stacked", "SELECT 1; DROP TABLE retail.orders"),
    ("commit", "COMMIT; SELECT 1"),
    ("sleep", "SELECT pg_sleep(30)"),
    ("set_config", "SELECT set_config('role', 'postgres', false)"),
    ("unknown table", "SELECT * FROM retail.secrets"),
    ("system catalog", "SELECT rolname, rolpassword FROM pg_authid"),
    ("information_schema", "SELECT * FROM information_schema.tables"),
    ("tenancy mapping", "SELECT * FROM tenancy.tenant_stores"),
    ("data-modifying CTE", "WITH d AS (DELETE FROM retail.orders RETURNING 1) SELECT count(*) FROM d"),
    ("select into", "SELECT * INTO stolen FROM retail.customers"),
    ("garbage", "this is not SQL"),
]

BAD_ARGUMENTS = [
    ("huge limit", "semantic_search_products", {"query_description": "drill", "max_rows": 1000000}),
    ("threshold out of range", "semantic_search_products", {"query_description": "drill", "similarity_threshold": 500}),
    ("wrong type", "execute_sales_query", {"postgresql_query": 12345}),
    ("missing argument", "execute_sales_query", {}),
    ("empty table list", "get_multiple_table_schemas", {"table_names": []}),
    ("catalog table schema", "get_multiple_table_schemas", {"table_names": ["pg_catalog.pg_authid"]}),
    ("oversized payload", "execute_sales_query", {"postgresql_query": "SELECT 1 " + "-- pad\n" * 20000}),
]


async def check_tools(client, golden_path: str) -> None:
    tools = (await client.list_tools()).tools
    got = sorted(
        ({"name": t.name, "inputSchema": t.input_schema} for t in tools), key=lambda t: t["name"]
    )
    with open(golden_path) as f:
        golden = sorted(
            ({"name": t["name"], "inputSchema": t["inputSchema"]} for t in json.load(f)), key=lambda t: t["name"]
        )
    if got != golden:
        fail(f"tools/list differs from the golden snapshot:\n{json.dumps(got, indent=1)[:2000]}")
    ok(f"tools/list matches the golden snapshot ({len(got)} tools)")


async def check_every_tool(client) -> None:
    calls = [
        ("get_current_utc_date", {}, lambda t: t.startswith("Current UTC Date/Time: ")),
        ("get_multiple_table_schemas", {"table_names": ["retail.orders", "retail.stores"]}, lambda t: "# Table: retail.orders" in t),
        ("execute_sales_query", GOOD_QUERY, lambda t: json.loads(t)["n"] == 1),
        ("semantic_search_products", {"query_description": "water the garden", "max_rows": 3}, lambda t: json.loads(t)["n"] >= 1),
        ("full_text_search_products", {"query": "drill"}, lambda t: json.loads(t)["n"] >= 1),
        ("hybrid_search_products", {"query_description": "cordless drill", "max_rows": 3}, lambda t: json.loads(t)["n"] >= 1),
    ]
    for tool, args, check in calls:
        is_error, body = await call(client, tool, args)
        if is_error or not check(body):
            fail(f"{tool} {args}: {body[:500]}")
        ok(f"{tool} answers")


async def orders_of(client) -> tuple[set[int], list[int]]:
    is_error, body = await call(
        client,
        "execute_sales_query",
        {"postgresql_query": "SELECT array_agg(order_id) AS ids, array_agg(DISTINCT store_id) AS stores FROM retail.orders"},
    )
    if is_error:
        fail(f"order ids: {body}")
    row = json.loads(body)["r"][0]
    return set(row[0] or []), sorted(row[1] or [])


async def check_bad_inputs(client) -> None:
    for label, sql in BAD_QUERIES:
        is_error, body = await call(client, "execute_sales_query", {"postgresql_query": sql})
        if not is_error:
            fail(f"bad query '{label}' was accepted: {body[:300]}")
        try:
            err = json.loads(body)["err"]
        except (ValueError, KeyError):
            fail(f"bad query '{label}' did not return the error shape: {body[:300]}")
        if not err or "Traceback" in err or "panicked" in err:
            fail(f"bad query '{label}' gave an unclear error: {err}")
        is_error, after = await call(client, "execute_sales_query", GOOD_QUERY)
        if is_error:
            fail(f"good call after '{label}' failed: {after}")
        ok(f"refused {label}: {err[:90]}")
    for label, tool, args in BAD_ARGUMENTS:
        try:
            is_error, body = await call(client, tool, args)
        except Exception as e:  # a JSON-RPC error is a clear refusal too
            is_error, body = True, str(e)
        if not is_error:
            fail(f"bad arguments '{label}' were accepted: {body[:300]}")
        is_error, after = await call(client, "execute_sales_query", GOOD_QUERY)
        if is_error:
            fail(f"good call after '{label}' failed: {after}")
        ok(f"refused {label}: {body[:90]}")


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url-a", required=True)
    p.add_argument("--url-b", required=True)
    p.add_argument("--token-a")
    p.add_argument("--token-b")
    p.add_argument("--golden", required=True)
    a = p.parse_args()
    async with connect(a.url_a, a.token_a) as ca, connect(a.url_b, a.token_b) as cb:
        await check_tools(ca, a.golden)
        await check_every_tool(ca)
        ids_a, stores_a = await orders_of(ca)
        ids_b, stores_b = await orders_of(cb)
        if not ids_a or not ids_b:
            fail("a tenant sees no orders at all")
        if ids_a & ids_b or set(stores_a) & set(stores_b):
            fail(f"tenants overlap: stores {stores_a} vs {stores_b}, {len(ids_a & ids_b)} shared orders")
        ok(f"tenants see disjoint orders: stores {stores_a} ({len(ids_a)} orders) vs {stores_b} ({len(ids_b)} orders)")
        await check_bad_inputs(ca)
    print("ALL CHECKS PASSED", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
