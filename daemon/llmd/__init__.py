"""llmd: an Ollama-compatible LLM server built as a Linux system service."""

__version__ = "0.1.0"
