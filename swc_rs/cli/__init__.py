"""Command-line interface: one module per command, the group lives in main.py."""
