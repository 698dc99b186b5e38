"""Component instances: one folder per data product (``<domain>/<product>/defs.yaml``) and the
platform's own components under ``_platform``."""
