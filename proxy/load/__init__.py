"""Load generation and client-side measurement, shared by `bench` and `scenarios`:
one timed request (`client`), open-loop arrivals (`arrivals`), prompt sets
(`prompts`) and vLLM-style summaries (`stats`). Nothing here is imported by the proxy."""
