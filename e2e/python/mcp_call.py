"""Calls one tool of an MCP server with the official MCP Python SDK, as a client on this machine
reaches a tenant through an ingress: the ingress's URL, the tenant's Host header, a bearer token.

Usage:
    python mcp_call.py --url http://127.0.0.1:PORT/mcp [--host seattle.mcp.test] [--token T] \
        --tool execute_sales_query --args '{"postgresql_query": "SELECT 1"}'

Prints one JSON line: {"tools": [names tools/list offered], "is_error": bool, "text": "..."}.
Exits 1 (printing the error) when the server cannot be reached or refuses the client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


async def call(url: str, host: str | None, token: str | None, tool: str, args: dict) -> dict:
    headers = {}
    if host:
        headers["Host"] = host
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            tools = [t.name for t in (await client.list_tools()).tools]
            result = await client.call_tool(tool, args)
            text = "".join(getattr(c, "text", "") for c in result.content)
            return {"tools": tools, "is_error": bool(result.is_error), "text": text}


def leaves(e: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, or `e` itself."""
    if isinstance(e, BaseExceptionGroup):
        return [leaf for inner in e.exceptions for leaf in leaves(inner)]
    return [e]


def main() -> None:
    p = argparse.ArgumentParser(description="Call one MCP tool and print the result as JSON")
    p.add_argument("--url", required=True)
    p.add_argument("--host", help="Host header (an Ingress rule's host)")
    p.add_argument("--token", help="bearer token")
    p.add_argument("--tool", required=True)
    p.add_argument("--args", default="{}", help="tool arguments as a JSON object")
    a = p.parse_args()
    try:
        out = asyncio.run(call(a.url, a.host, a.token, a.tool, json.loads(a.args)))
    except Exception as e:  # noqa: BLE001 (report whatever the client raised)
        # The SDK raises from task groups: say what failed inside, not only "unhandled errors".
        causes = "; ".join(f"{type(x).__name__}: {x}" for x in leaves(e))
        print(f"error: {causes}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
