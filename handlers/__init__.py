"""keydesk's edges: HTTP API, CLI, alerts, reports and the local stand-ins, one sub-package each.

Each edge is handed what it needs by the composition root (``composition.py``)
instead of reaching into the stream processor's insides.
"""
