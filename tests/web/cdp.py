"""A minimal Chrome DevTools Protocol client over `--remote-debugging-pipe`.

Chromium reads commands from fd 3 and writes replies and events to fd 4, each
a JSON object followed by a NUL byte; no websocket library is needed.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def find_browser() -> str | None:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


class CDPError(RuntimeError):
    pass


class Browser:
    """Headless Chromium with one page; `evaluate` runs JavaScript in it."""

    def __init__(self, binary: str, user_data_dir: Path, *, width: int = 1200, height: int = 820):
        # Our ends of the two pipes, and Chromium's ends moved to fds >= 10 so
        # that bash (dash takes only one-digit fds) can place them on 3 and 4
        # without clobbering.
        self.log_path = user_data_dir.with_name(user_data_dir.name + ".log")
        self._log = self.log_path.open("wb")
        cmd_r, self._cmd_w = os.pipe()
        self._evt_r, evt_w = os.pipe()
        child_r = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10)
        child_w = fcntl.fcntl(evt_w, fcntl.F_DUPFD, 10)
        os.close(cmd_r)
        os.close(evt_w)
        argv = [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--no-first-run",
            "--no-default-browser-check",
            "--hide-scrollbars",
            f"--window-size={width},{height}",
            f"--user-data-dir={user_data_dir}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        self.proc = subprocess.Popen(
            [
                "bash",
                "-c",
                f'exec "$0" "$@" 3<&{child_r} 4>&{child_w} {child_r}<&- {child_w}>&-',
                *argv,
            ],
            pass_fds=(child_r, child_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        os.close(child_r)
        os.close(child_w)
        self._buf = b""
        self._next_id = 0
        try:
            target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            attached = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})
            self.session = attached["sessionId"]
            self.call("Page.enable", session=True)
        except BaseException:
            self.close()
            raise

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session: bool = False,
        timeout: float = 15.0,
    ) -> dict[str, Any]:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") != self._next_id:
                continue  # an event, or a reply to something else
            if "error" in reply:
                raise CDPError(f"{method}: {reply['error']}")
            result: dict[str, Any] = reply.get("result", {})
            return result

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from chromium")
            ready, _, _ = select.select([self._evt_r], [], [], left)
            if ready:
                chunk = os.read(self._evt_r, 1 << 16)
                if not chunk:
                    tail = self.log_path.read_text(errors="replace")[-2000:]
                    raise CDPError(f"chromium exited ({self.proc.poll()}):\n{tail}")
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", {"url": url}, session=True)

    def evaluate(self, expression: str) -> Any:
        """Value of a JavaScript expression (promises are awaited)."""
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session=True,
        )
        if "exceptionDetails" in result:
            raise CDPError(f"{expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 10.0) -> Any:
        """Poll until `expression` is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = self.evaluate(expression)
            except CDPError as e:  # e.g. the page is still loading
                last = e
            if last and not isinstance(last, CDPError):
                return last
            time.sleep(0.1)
        body = self.evaluate("document.body ? document.body.innerText : ''")
        raise TimeoutError(f"{expression!r} stayed {last!r}; page text:\n{body}")

    def set_input_files(self, selector: str, paths: list[Path]) -> None:
        """Choose `paths` in the `<input type=file>` at `selector`, as a user would: the
        input fires its change event."""
        found = self.call(
            "Runtime.evaluate",
            {"expression": f"document.querySelector({json.dumps(selector)})"},
            session=True,
        )
        object_id = found["result"].get("objectId")
        if not object_id:
            raise CDPError(f"no element matches {selector!r}")
        files = [str(p.resolve()) for p in paths]
        self.call("DOM.setFileInputFiles", {"files": files, "objectId": object_id}, session=True)

    def emulate_network(self, *, offline: bool = False, upload_bytes_per_s: int = -1) -> None:
        """DevTools network conditions for the page: `offline` fails the requests in
        flight as a lost connection would; a positive `upload_bytes_per_s` throttles
        request bodies (-1: no limit)."""
        self.call("Network.enable", session=True)
        self.call(
            "Network.emulateNetworkConditions",
            {
                "offline": offline,
                "latency": 0,
                "downloadThroughput": -1,
                "uploadThroughput": upload_bytes_per_s,
            },
            session=True,
        )

    def save_downloads_to(self, directory: Path) -> None:
        """Let downloads happen, into `directory`, under the names the server suggests."""
        self.call(
            "Browser.setDownloadBehavior",
            {"behavior": "allow", "downloadPath": str(directory.resolve())},
        )

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.call("Browser.close", timeout=5)
        except (OSError, CDPError, TimeoutError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()
        for fd in (self._cmd_w, self._evt_r):
            try:
                os.close(fd)
            except OSError:
                pass
