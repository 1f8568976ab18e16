"""Clients of the apps kernels serve: the web terminal (ttyd's WebSocket protocol)
and Jupyter (REST plus a kernel's WebSocket channel)."""

from __future__ import annotations

import asyncio
import json
import uuid

import aiohttp

# Generous: a loaded machine may take a while to start Jupyter.
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=30)


async def shell_says(
    base: str, command: str, expected: str, jar: aiohttp.abc.AbstractCookieJar | None = None
) -> str:
    """Type `command` into the terminal over its ttyd-style WebSocket; what came back.
    `jar`: cookies to send (the app proxy's)."""
    seen = ""
    async with aiohttp.ClientSession(cookie_jar=jar, timeout=HTTP_TIMEOUT) as http:
        async with http.ws_connect(f"{base}/ws", protocols=("tty",)) as ws:
            assert ws.protocol == "tty"
            await ws.send_bytes(json.dumps({"AuthToken": "", "columns": 80, "rows": 24}).encode())
            await ws.send_bytes(b"0" + command.encode() + b"\n")
            async with asyncio.timeout(30):
                while expected not in seen:
                    message = await ws.receive()
                    assert message.type == aiohttp.WSMsgType.BINARY, message
                    if message.data[:1] == b"0":
                        seen += message.data[1:].decode(errors="replace")
    return seen


async def jupyter_runs(
    base: str, code: str, expected: str, jar: aiohttp.CookieJar | None = None
) -> None:
    """A Jupyter kernel started over the REST API runs `code` over its WebSocket channel
    (Jupyter wants its XSRF cookie echoed on POST). `jar`: cookies to send as well."""
    jar = jar or aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar, timeout=HTTP_TIMEOUT) as http:
        async with http.get(f"{base}/lab") as page:
            assert page.status == 200
        xsrf = next(cookie.value for cookie in jar if cookie.key == "_xsrf")
        headers = {"X-XSRFToken": xsrf}
        async with http.post(f"{base}/api/kernels", json={}, headers=headers) as created:
            assert created.status == 201
            kernel = await created.json()
        async with http.ws_connect(f"{base}/api/kernels/{kernel['id']}/channels") as ws:
            msg_id = uuid.uuid4().hex
            header = {"msg_id": msg_id, "msg_type": "execute_request", "version": "5.3"}
            header |= {"username": "test", "session": uuid.uuid4().hex, "date": ""}
            content = {"code": code, "silent": False, "store_history": False}
            content |= {"user_expressions": {}, "allow_stdin": False, "stop_on_error": True}
            await ws.send_json(
                {"header": header, "parent_header": {}, "metadata": {}, "content": content}
                | {"channel": "shell"}
            )
            async with asyncio.timeout(60):
                while True:
                    message = await ws.receive_json()
                    mine = message.get("parent_header", {}).get("msg_id") == msg_id
                    if mine and message["msg_type"] == "stream":
                        assert message["content"]["text"] == expected
                        return
