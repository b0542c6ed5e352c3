"""What a failed send on a policy connection becomes: one :class:`PolicyError` that drops the
connection, the same for both clients (:class:`rt2_ros.remote.client.RemotePolicy` and
:class:`rt2_ros.remote.openpi_client.OpenPIPolicy`).

A send that does not finish by the deadline means the server is not reading: a reply may
still come for what was half sent, so the connection is aborted, never reused (the
``websockets`` sync client's ``send`` cannot be cancelled part way).
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

from rt2_ros.policies.base import PolicyError

__all__ = ["send_failures"]


@contextlib.contextmanager
def send_failures(fail: Callable[..., PolicyError], server_url: str, timeout_s: float) -> Iterator[None]:
    """Run the sends of one request inside; any failure raises ``fail(message, reconnect=True)``.

    Args:
        fail: the client's failure hook: ``fail(message, reconnect=...)`` logs, drops the
            connection when ``reconnect`` and returns the :class:`PolicyError` to raise.
        server_url: the server's address, for the message.
        timeout_s: the request's deadline from its start, s, for the message.

    Raises:
        PolicyError: the send timed out (``TimeoutError``), the connection closed
            (``websockets.exceptions.ConnectionClosed``), or anything else went wrong.
    """
    from websockets.exceptions import ConnectionClosed

    try:
        yield
    except TimeoutError:
        raise fail(
            f"sending to {server_url} did not finish within {timeout_s:.3f} s "
            "(the server is not reading); connection aborted",
            reconnect=True,
        ) from None
    except ConnectionClosed as e:
        raise fail(f"connection to {server_url} lost ({e})", reconnect=True) from None
    except Exception as e:  # noqa: BLE001 - any failed send leaves the connection unusable
        raise fail(f"sending to {server_url} failed: {type(e).__name__}: {e}", reconnect=True) from None
