"""The ddp command line."""
