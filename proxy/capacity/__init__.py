"""`sla-proxy capacity`: how many sequences fit in a GPU's KV cache, and the
`--max-limit` the proxy should use. The arithmetic is pure (`plan.py`); `cli.py`
reads the options and prints the answer."""
