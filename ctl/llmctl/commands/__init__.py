"""One module per command group, each with ``register(subparsers)``; listed in llmctl.parser."""
