"""Exports of product specs to open standards (ODPS descriptors)."""

from ddp_assets.export.odps import to_odps, write_odps

__all__ = ["to_odps", "write_odps"]
