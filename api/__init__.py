"""The HTTP API (Falcon), served by waitress through ``python -m api.serve`` (``clinic api``)."""
