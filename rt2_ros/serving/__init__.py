"""GPU side: ``rt2-ros serve`` (settings, dynamic batching, service, websocket server, Ray Serve app, CLI) and ``rt2-ros predict``."""
