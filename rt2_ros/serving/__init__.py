"""Remote inference: one model server for many robots.

* :mod:`rt2_ros.remote.protocol` - the wire format (msgpack frames, numpy arrays as
  raw bytes with dtype and shape; never pickle) and request validation, shared by
  every server and the client.
* :mod:`rt2_ros.serving.batching` - dynamic batching across concurrent clients on top
  of :meth:`rt2_ros.policies.base.Policy.infer_batch`.
* :mod:`rt2_ros.serving.service` - framework-independent request handling (key
  check, limits, batching, health), used by both servers below.
* :mod:`rt2_ros.serving.ws_server` - the websocket server (``rt2-ros serve``).
* :mod:`rt2_ros.serving.ray_app` - the same protocol as a Ray Serve deployment, for
  several replicas behind one address (optional; needs ``ray[serve]``).

The client is :class:`rt2_ros.remote.client.RemotePolicy`. Importing this package
imports nothing heavy (no torch, no websockets).
"""
