"""Drives an MCP server with the official Python SDK (PyPI `mcp`), for the Rust tests.

    client.py PLAN.json

PLAN: {"stdio": {"command", "args", "env", "cwd"}} or {"url": "http://…/mcp", "headers": {…}},
and "calls": [{"tool", "arguments"}]. Prints one JSON object:
the server's info, its tools as listed, and each call's result (as the SDK parsed it) with the
progress notifications it received. The Rust test asserts on it: nothing is checked here.
"""

import asyncio
import json
import sys

import httpx2
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client


def dump(model):
    return model.model_dump(by_alias=True, mode="json", exclude_none=True)


async def drive(session, plan):
    init = await session.initialize()
    out = {"server": dump(init), "tools": [], "calls": []}
    listed = await session.list_tools()
    out["tools"] = [dump(t) for t in listed.tools]
    for call in plan.get("calls", []):
        progress = []

        async def on_progress(done, total, message, progress=progress):
            progress.append({"progress": done, "total": total, "message": message})

        try:
            result = await session.call_tool(
                call["tool"], call.get("arguments", {}), progress_callback=on_progress
            )
            out["calls"].append(
                {"tool": call["tool"], "result": dump(result), "progress": progress}
            )
        except Exception as e:  # a protocol error: the test says what it expected
            out["calls"].append(
                {"tool": call["tool"], "exception": repr(e), "progress": progress}
            )
    return out


async def main():
    plan = json.load(open(sys.argv[1]))
    if "stdio" in plan:
        s = plan["stdio"]
        params = StdioServerParameters(
            command=s["command"], args=s.get("args", []), env=s.get("env"), cwd=s.get("cwd")
        )
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                out = await drive(session, plan)
    else:
        async with httpx2.AsyncClient(headers=plan.get("headers", {}), timeout=120) as http:
            async with streamable_http_client(plan["url"], http_client=http) as streams:
                read, write = streams[0], streams[1]
                async with ClientSession(read, write) as session:
                    out = await drive(session, plan)
    print(json.dumps(out))


asyncio.run(main())
