"""API keys: named, scoped, stored hashed in the state directory (see ``store.py``)."""

from llmd.keys.store import KeyStore
from llmd.keys.values import ApiKey, Scope, parse_lifetime, parse_scopes

__all__ = ["ApiKey", "KeyStore", "Scope", "parse_lifetime", "parse_scopes"]
