"""The REST port: a FastAPI application (``ddp serve``)."""

from ddp_assets.ports.rest.app import create_app

__all__ = ["create_app"]
