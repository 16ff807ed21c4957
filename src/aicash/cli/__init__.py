"""The `aicash` command line."""
