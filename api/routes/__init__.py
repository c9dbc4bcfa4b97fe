"""HTTP routes, one module per resource; each stays thin over ``db`` and ``api.services``."""
