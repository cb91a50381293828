"""llmctl: the command-line client of llmd."""
