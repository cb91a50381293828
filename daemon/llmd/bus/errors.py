"""LlmdError → ``org.llmd.Error.<Name>``: the bus's one mapping of llmd's error hierarchy.

Looked up along the MRO, so a new LlmdError subclass falls back to its parent's name; the
message is kept as is (it already carries Ollama's wording).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Iterator

from llmd import errors
from llmd.bus import interface as bus

log = logging.getLogger(__name__)

BUS_ERRORS: dict[type[errors.LlmdError], type[bus.LlmdBusError]] = {
    errors.LlmdError: bus.LlmdBusError,
    errors.AccessDenied: bus.AccessDeniedError,
    errors.InvalidRequest: bus.InvalidRequestError,
    errors.InvalidModelName: bus.InvalidModelNameError,
    errors.InvalidOption: bus.InvalidOptionError,
    errors.NotFound: bus.NotFoundError,
    errors.ModelNotFound: bus.ModelNotFoundError,
    errors.QueueFull: bus.QueueFullError,
    errors.InsufficientMemory: bus.InsufficientMemoryError,
    errors.RunnerError: bus.RunnerError,
    errors.RegistryError: bus.RegistryError,
    errors.ConfigError: bus.ConfigError,
}


def to_bus_error(exc: errors.LlmdError) -> bus.LlmdBusError:
    for cls in type(exc).__mro__:
        if cls in BUS_ERRORS:
            return BUS_ERRORS[cls](exc.message)
    raise AssertionError("LlmdError is in the table")  # pragma: no cover


@contextlib.contextmanager
def reported_on_bus() -> Iterator[None]:
    """Re-raise LlmdError as its bus error; anything else is a bug, logged once, sent as Failed."""
    try:
        yield
    except bus.LlmdBusError:
        raise
    except errors.LlmdError as exc:
        raise to_bus_error(exc) from exc
    except Exception as exc:
        log.exception("bus method failed")
        raise bus.LlmdBusError(f"internal error: {exc}") from exc
