"""`sla-proxy run` (what `make run` starts): simulator, proxy and a live view."""
