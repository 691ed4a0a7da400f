"""The `fanzha` command: one CLI in front of data/, training/ and serving/ (see fanzha.cli)."""
