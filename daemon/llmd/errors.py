"""The one error hierarchy of llmd. It knows nothing of transports.

Each transport maps these classes once: ``api/errors.py`` (HTTP status and body),
``bus/errors.py`` (``org.llmd.Error.<Name>``) and ``llmctl/errors.py`` (message and exit code).
The message of an error is what the caller sees, so it follows Ollama's wording where one exists.

    LlmdError
    ├── InvalidRequest              the caller sent something wrong (HTTP 400)
    │   ├── InvalidModelName
    │   ├── InvalidDigest
    │   ├── DigestMismatch
    │   ├── ModelfileError
    │   ├── InvalidModelFile        not GGUF, truncated, unreadable metadata
    │   ├── InvalidOption           a wrongly typed or unknown option / parameter
    │   ├── TemplateError           a chat template that does not parse or fails to render
    │   ├── UnsupportedCapability   tools, images, thinking... on a model without them
    │   ├── KeyExists               an API key name already taken
    │   ├── LimitExceeded           a value beyond a configured limit (num_ctx, keep_alive...)
    │   └── RequestTooLarge         a body over max_request_bytes (HTTP 413)
    ├── NotFound                    (HTTP 404)
    │   ├── ModelNotFound
    │   ├── BlobNotFound
    │   └── KeyNotFound             no API key of that name
    ├── AccessDenied                a state change by a caller without the right
    │   └── ScopeMissing            a valid API key without the scope a route needs (HTTP 403)
    ├── Unauthorized                no API key, or one that is unknown, revoked or expired (401)
    ├── KeyBusy                     an API key already at its max_concurrent (HTTP 429)
    ├── QueueFull                   (HTTP 503)
    ├── LoadTimeout                 no room for a model before the load deadline (HTTP 503)
    ├── InsufficientMemory          a model that cannot fit even alone
    ├── InsufficientStorage         a blob that would not leave min_free_disk free (HTTP 507)
    ├── RunnerError                 a model process failed
    │   ├── RunnerLoadFailed
    │   ├── RunnerCrashed
    │   └── ModelCoolingDown        its runner crashed too often in a row: not respawned yet (503)
    ├── RegistryError               a registry refused or broke a pull / push
    │   └── RegistryAuthError
    ├── CorruptBlobs                blobs in the store whose bytes no longer match their digest
    └── ConfigError                 an invalid configuration source, key or value
"""

from __future__ import annotations


class LlmdError(Exception):
    """Base of every error llmd reports to a caller."""

    # Seconds after which a retry may succeed, for errors that pass (HTTP's Retry-After)
    retry_after: int | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidRequest(LlmdError):
    """The request itself is wrong; retrying it unchanged cannot succeed."""


class InvalidModelName(InvalidRequest):
    pass


class InvalidDigest(InvalidRequest):
    pass


class DigestMismatch(InvalidRequest):
    pass


class ModelfileError(InvalidRequest):
    """A Modelfile that does not parse; the message carries the line number."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line is not None else message)
        self.line = line


class InvalidModelFile(InvalidRequest):
    pass


class InvalidOption(InvalidRequest):
    pass


class TemplateError(InvalidRequest):
    """A Go or Jinja chat template that does not parse or fails while rendering."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"template error: {problem}")
        self.problem = problem


class UnsupportedCapability(InvalidRequest):
    pass


class LimitExceeded(InvalidRequest):
    """A value beyond a configured limit; the message names the field and the limit."""


class RequestTooLarge(InvalidRequest):
    def __init__(self, size: int, limit: int, *, at_least: bool = False) -> None:
        shown = f"more than {size}" if at_least else str(size)
        super().__init__(f"request body too large ({shown} bytes, limit {limit})")
        self.size = size
        self.limit = limit


class NotFound(LlmdError):
    pass


class ModelNotFound(NotFound):
    pass


class BlobNotFound(NotFound):
    pass


class KeyNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"no API key named '{name}'")
        self.name = name


class KeyExists(InvalidRequest):
    def __init__(self, name: str) -> None:
        super().__init__(f"an API key named '{name}' already exists; remove it first")
        self.name = name


class AccessDenied(LlmdError):
    pass


class ScopeMissing(AccessDenied):
    def __init__(self, key_name: str, scope: str) -> None:
        super().__init__(f"key '{key_name}' lacks the '{scope}' scope")
        self.key_name = key_name
        self.scope = scope


class Unauthorized(LlmdError):
    """The message stays "unauthorized" whatever the reason: a caller learns nothing about keys."""

    def __init__(self, message: str = "unauthorized") -> None:
        super().__init__(message)


class KeyBusy(LlmdError):
    def __init__(self, key_name: str, limit: int, retry_after: int = 1) -> None:
        requests = "request" if limit == 1 else "requests"
        super().__init__(
            f"key '{key_name}' already has {limit} {requests} in flight (its max_concurrent)"
        )
        self.key_name = key_name
        self.retry_after = retry_after


class QueueFull(LlmdError):
    def __init__(
        self, message: str = "server busy, please try again.  maximum pending requests exceeded"
    ) -> None:
        super().__init__(message)


class LoadTimeout(LlmdError):
    """Busy models did not make room for a load before ``load_timeout``; retrying later may work."""


class InsufficientMemory(LlmdError):
    pass


class InsufficientStorage(LlmdError):
    pass


class RunnerError(LlmdError):
    pass


class RunnerLoadFailed(RunnerError):
    """The model did not load. ``exit_status`` is set when the runner process died doing it."""

    def __init__(self, message: str, *, exit_status: str | None = None) -> None:
        super().__init__(message)
        self.exit_status = exit_status


class RunnerCrashed(RunnerError):
    pass


class ModelCoolingDown(RunnerError):
    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class RegistryError(LlmdError):
    pass


class RegistryAuthError(RegistryError):
    pass


class PinMismatch(RegistryError):
    """The registry serves another manifest than the digest llmd.yaml pins."""


class CorruptBlobs(LlmdError):
    pass


class ConfigError(LlmdError):
    """An invalid configuration: the message names the source, the key and what is wrong."""

    def __init__(self, source: str, key: str | None, problem: str) -> None:
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {problem}")
        self.source = source
        self.key = key
