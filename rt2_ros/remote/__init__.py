"""Robot side of remote inference: the wire protocol and the ``rt2-ros serve`` client (extra ``remote``)."""
