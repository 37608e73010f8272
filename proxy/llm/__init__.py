"""Model and hardware arithmetic (level 0, pure): KV-cache bytes per token, weight
bytes, and the roofline time of one engine step. Used by the simulator and the
capacity planner, never by the proxy's request path."""
