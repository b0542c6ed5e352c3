"""Headless Chromium driven over the Chrome DevTools Protocol (CDP), for the docs tests.

Debian's ``chromium`` started with ``--remote-debugging-port=0`` writes the port it chose to
``DevToolsActivePort`` in its profile directory; the page target's websocket takes CDP
commands (``{"id", "method", "params"}``) and sends events (``{"method", "params"}``), see
https://chromedevtools.github.io/devtools-protocol/. The websocket is the ``websockets``
library's synchronous client (already a dependency of the remote backend), so no browser
driver package is needed.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

#: Names Debian and other distributions give the browser.
BINARIES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    """Path of a Chromium binary on PATH, or None."""
    for name in BINARIES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Chromium:
    """One headless browser with one page. Use as a context manager.

    Attributes:
        events: every CDP event received so far (dicts with ``method`` and ``params``).
    """

    def __init__(self, binary: str, width: int = 1280, height: int = 900, start_timeout_s: float = 60.0):
        self.binary = binary
        self.size = (width, height)
        self.start_timeout_s = start_timeout_s
        self.events: list[dict[str, Any]] = []
        self._next_id = 0

    def __enter__(self) -> "Chromium":
        self._stack = contextlib.ExitStack()
        self._profile = tempfile.mkdtemp(prefix="rt2-chromium-")
        self._log = open(os.path.join(self._profile, "chromium.log"), "w")  # noqa: SIM115 - closed in __exit__
        args = [
            self.binary,
            "--headless",
            "--no-sandbox",  # CI runs as root
            "--disable-gpu",
            "--no-first-run",
            "--remote-debugging-port=0",
            f"--user-data-dir={self._profile}",
            f"--window-size={self.size[0]},{self.size[1]}",
            "about:blank",
        ]
        self._proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        port_file = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + self.start_timeout_s
        while not (port_file.is_file() and port_file.read_text().strip()):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError(f"chromium did not start (see {self._log.name})")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as r:
            pages = [t for t in json.load(r) if t.get("type") == "page"]
        self._ws = self._stack.enter_context(connect(pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=30))
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.close()
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        self._log.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    def send(self, method: str, params: dict[str, Any] | None = None, timeout_s: float = 60.0) -> dict[str, Any]:
        """Run one CDP command and return its result; events that arrive meanwhile go to :attr:`events`.

        Raises:
            RuntimeError: the browser answered with an error.
            TimeoutError: no answer within ``timeout_s``.
        """
        self._next_id += 1
        want = self._next_id
        self._ws.send(json.dumps({"id": want, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout_s
        while True:
            msg = json.loads(self._ws.recv(timeout=max(deadline - time.monotonic(), 0.001)))
            if msg.get("id") == want:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_for_event(self, method: str, timeout_s: float = 60.0) -> dict[str, Any]:
        """The first event named ``method`` (already received or the next ones).

        Raises:
            TimeoutError: none within ``timeout_s``.
        """
        for ev in self.events:
            if ev["method"] == method:
                return ev
        deadline = time.monotonic() + timeout_s
        while True:
            msg = json.loads(self._ws.recv(timeout=max(deadline - time.monotonic(), 0.001)))
            if "method" in msg:
                self.events.append(msg)
                if msg["method"] == method:
                    return msg

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path) -> bytes:
        """Write a PNG of the viewport to ``path`` and return its bytes."""
        png = base64.b64decode(self.send("Page.captureScreenshot", {"format": "png"})["data"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
        return png

    def console_errors(self) -> list[str]:
        """Console errors, uncaught exceptions and failed loads (Log domain errors) seen so far."""
        out = []
        for ev in self.events:
            p = ev.get("params", {})
            if ev["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"]))
            elif ev["method"] == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                out.append("exception: " + str(d.get("exception", {}).get("description", d.get("text"))))
            elif ev["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                e = p["entry"]
                out.append(f"log: {e.get('text')} {e.get('url', '')}".strip())
        return out
