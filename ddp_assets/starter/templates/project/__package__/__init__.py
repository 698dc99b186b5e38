"""__PROJECT_NAME__: data products on ddp."""
