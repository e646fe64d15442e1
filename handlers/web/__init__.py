"""The web desk (issue 12): pages rendered by the worker's own aiohttp server.

Jinja2 templates through aiohttp-jinja2, htmx for partial updates (vendored,
``vendored.py``), no Node build step; the interface speaks Chinese by default
and English on request from one message catalogue (``languages.py``).
"""
