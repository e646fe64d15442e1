"""The HTTP API's room: routes, the guard and bounds every request meets, the dispatch
queue and the worker's health."""
