"""GPU side of remote inference (``rt2-ros serve``): settings, dynamic batching, the service, the websocket server, the Ray Serve app, the CLI."""
