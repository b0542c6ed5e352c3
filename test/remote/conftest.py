"""Remote inference over loopback: the robot-side client and the server's framing and
limits (websockets + msgpack, the ``remote`` and ``server`` extras), no rclpy, no torch."""

import pytest

pytest.importorskip("websockets", reason="the remote layer needs websockets (pip install -e .[remote])")
pytest.importorskip("msgpack", reason="the remote layer needs msgpack (pip install -e .[remote])")
