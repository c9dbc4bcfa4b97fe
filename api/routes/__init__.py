"""HTTP routes, one module per resource; each stays thin over ``db`` and the ``api`` helpers."""
