"""The HTTP API (Falcon), served by waitress: ``waitress-serve --call api.app:get_app``."""
