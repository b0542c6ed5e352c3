"""openpi's own client and server, read in place from ``shared/fixtures/openpi``.

The fixture (openpi's ``openpi-client`` package, its ``websocket_policy_server.py``
and the LIBERO / DROID example runtimes) is never copied: ``$RT2_OPENPI_FIXTURE`` if
set, else ``../shared/fixtures/openpi`` next to the repository. :func:`require` puts
its client package and server module on ``sys.path`` or skips with one reason.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_ENV = "RT2_OPENPI_FIXTURE"
SKIP_REASON = "openpi fixture absent (shared/fixtures/openpi, or $RT2_OPENPI_FIXTURE)"


def fixture_dir() -> Path:
    """The fixture directory (it may not exist)."""
    env = os.environ.get(FIXTURE_ENV)
    return Path(env) if env else ROOT.parent / "shared" / "fixtures" / "openpi"


def require() -> Path:
    """The fixture directory with openpi's client and server importable; skip when absent."""
    d = fixture_dir()
    client_src = d / "openpi-client" / "src"
    server_dir = d / "server"
    if (
        not (client_src / "openpi_client" / "websocket_client_policy.py").is_file()
        or not (server_dir / "websocket_policy_server.py").is_file()
    ):
        pytest.skip(SKIP_REASON)
    for p in (client_src, server_dir):
        if str(p) not in sys.path:
            sys.path.insert(0, str(p))
    return d
