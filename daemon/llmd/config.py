"""One frozen Config built from compiled-in defaults, then YAML, then ``OLLAMA_*`` variables.

Only this module reads ``os.environ`` for settings. Every problem becomes a ConfigError whose
message names the source (a file path or a variable), the key and what is wrong.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from llmd.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/llmd/llmd.yaml")
DEFAULT_PORT = 11434
KEYS_FILE_NAME = "api-keys.json"
AUTH_POLICIES = ("loopback", "required", "none")
FOREVER = math.inf
# Go's time.Duration tops out at 2^63-1 ns (about 292 years): the longest keep_alive Ollama can
# express, and a bound that keeps expiry times inside what a datetime can hold.
MAX_DURATION = (2**63 - 1) / 1e9

# --- Go durations --------------------------------------------------------------------------------

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text: str) -> float:
    """Seconds from a Go ``time.ParseDuration`` string ("5m", "1h30m", "-1m", "0").

    Raises ValueError with Go's wording, which Ollama returns to clients unchanged.
    """
    s = text
    sign = 1.0
    if s[:1] in "+-" and s:
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f'time: invalid duration "{text}"')
    total = 0.0
    pos = 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m is None:
            if re.fullmatch(r"[\d.]+", s[pos:]):
                raise ValueError(f'time: missing unit in duration "{text}"')
            bad = re.match(r"[\d.]+([^\d.]*)", s[pos:])
            if bad and bad.group(1):
                raise ValueError(f'time: unknown unit "{bad.group(1)}" in duration "{text}"')
            raise ValueError(f'time: invalid duration "{text}"')
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return sign * total


def parse_keep_alive(value: object) -> float:
    """Seconds from a keep_alive value as Ollama takes it: a number of seconds or a Go duration.

    Negative means forever (returned as ``math.inf``); 0 means unload after the request.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"Unsupported type: '{type(value).__name__}'")
    seconds = float(value) if not isinstance(value, str) else parse_go_duration(value.strip())
    if math.isnan(seconds):
        raise ValueError("keep_alive must be a number")
    return FOREVER if seconds < 0 else seconds


def format_duration(seconds: float) -> str:
    """The inverse of parse_keep_alive for display: 300 -> "5m0s", inf -> "-1"."""
    if math.isinf(seconds):
        return "-1"
    whole = int(seconds)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    frac = seconds - whole
    sec = f"{s + frac:g}s"
    if h:
        return f"{h}h{m}m{sec}"
    if m:
        return f"{m}m{sec}"
    return sec


# --- OLLAMA_HOST ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HostAddress:
    scheme: str
    host: str
    port: int
    path: str = ""

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}"

    def connectable(self) -> HostAddress:
        """The address a client dials: the unspecified addresses become loopback."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        return dataclasses.replace(self, host=host)


def parse_host(value: str) -> HostAddress:
    """Parse OLLAMA_HOST as Ollama does (envconfig.Host)."""
    s = value.strip().strip("\"'").strip()
    if not s:
        return HostAddress("http", "127.0.0.1", DEFAULT_PORT)
    scheme, sep, rest = s.partition("://")
    if not sep:
        scheme, rest = "http", s
    default_port = {"http": 80, "https": 443}.get(scheme, DEFAULT_PORT) if sep else DEFAULT_PORT
    if not sep and rest == "ollama.com":
        scheme, default_port = "https", 443
    hostport, slash, path = rest.partition("/")
    path = slash + path if slash else ""
    host, port_text = hostport, ""
    if hostport.startswith("["):
        host, _, tail = hostport[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
    elif hostport.count(":") == 1:
        host, _, port_text = hostport.partition(":")
    port: int | None = None
    if port_text.isdigit() and 0 <= int(port_text) <= 65535:
        port = int(port_text)
    return HostAddress(scheme, host, port if port is not None else default_port, path.rstrip("/"))


# --- the Config object ---------------------------------------------------------------------------


def _default_models_dir() -> Path:
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        return Path(state.split(":")[0]) / "models"
    return Path.home() / ".ollama" / "models"


_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class DeclaredModel:
    """One entry of the YAML ``models:`` list: a model this host must have, maybe pinned."""

    name: str                  # as a client names it; parsed into a ModelName by the store
    pin: str | None = None     # "sha256:<hex>" of the manifest the registry must serve
    preload: bool = False      # load at start; /ready waits for it
    insecure: bool = False     # the registry speaks plain http

    @property
    def reference(self) -> str:
        return f"{self.name}@{self.pin}" if self.pin else self.name


@dataclass(frozen=True, slots=True)
class Config:
    """Every setting of llmd. Durations are seconds; ``math.inf`` means forever, 0 disables."""

    host: HostAddress = field(default_factory=lambda: parse_host(""))
    models: Path = field(default_factory=_default_models_dir)
    declared_models: tuple[DeclaredModel, ...] = ()
    keep_alive: float = 300.0
    max_loaded_models: int = 3
    num_parallel: int = 0  # 0: chosen from the memory budget, up to 4
    max_queue: int = 512
    origins: tuple[str, ...] = ()
    context_length: int = 4096
    debug: int = 0
    max_memory: int = 0  # bytes; 0 means a fraction of available RAM
    memory_fraction: float = 0.9
    num_threads: int = 0  # 0: one per physical core
    idle_exit: float = 0.0
    drain_timeout: float = 30.0
    load_timeout: float = 300.0
    noprune: bool = False
    prompt_cache: int | None = None  # bytes per runner; None: a share of the memory budget
    kv_cache_type: str = "f16"
    flash_attention: bool | None = None  # None: llama.cpp decides (on where the CPU supports it)
    # Who must present an API key over HTTP: every peer but loopback ones, everyone, or no one.
    auth: str = "loopback"
    allow_unauthenticated_network: bool = False  # the only way to serve a network with auth: none
    keys_file: Path | None = None  # None: api-keys.json beside the models directory
    public_metrics: bool = False  # /metrics without a key, for a scraper that cannot send one
    metrics: bool = True  # record and serve GET /metrics
    # Request limits (api/limits.py for bodies, 413; inference/limits.py for fields, 400s naming
    # the field).
    max_request_bytes: int = 32 * 1024 * 1024
    max_num_ctx: int = 1024 * 1024
    max_num_predict: int = 1024 * 1024
    max_keep_alive: float = MAX_DURATION
    max_messages: int = 4096
    max_stop: int = 64  # stop strings per request
    max_stop_length: int = 1024  # characters per stop string
    min_free_disk: int = 1024 * 1024 * 1024  # a blob upload leaves at least this much free
    source: str = "defaults"

    @property
    def api_keys_path(self) -> Path:
        return self.keys_file or self.models.parent / KEYS_FILE_NAME

    @property
    def log_level(self) -> str:
        return {0: "INFO", 1: "DEBUG"}.get(self.debug, "DEBUG")


# Typed converters, shared by the YAML and environment layers. Each raises ValueError with a
# message that reads well after "<source>: <key>: ".


def _int(minimum: int) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError("must be an integer")
        try:
            number = int(str(value).strip()) if not isinstance(value, int) else value
        except ValueError:
            raise ValueError(f"must be an integer, got {value!r}") from None
        if number < minimum:
            raise ValueError(f"must be at least {minimum}, got {number}")
        return number

    return convert


def _float(minimum: float) -> Callable[[Any], float]:
    def convert(value: Any) -> float:
        if isinstance(value, bool):
            raise ValueError("must be a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"must be a number, got {value!r}") from None
        if not number >= minimum:
            raise ValueError(f"must be at least {minimum:g}, got {value!r}")
        return number

    return convert


def _duration(allow_forever: bool) -> Callable[[Any], float]:
    def convert(value: Any) -> float:
        seconds = parse_keep_alive(value)
        if math.isinf(seconds) and not allow_forever:
            raise ValueError("must not be negative")
        if not math.isinf(seconds) and seconds > MAX_DURATION:
            raise ValueError(f"must be at most {format_duration(MAX_DURATION)}")
        return seconds

    return convert


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "t", "true", "yes", "on"):
        return True
    if text in ("", "0", "f", "false", "no", "off"):
        return False
    # Ollama: an unparseable non-empty value counts as true
    return True


def _strict_bool(value: Any) -> bool:
    """A yes/no that guards security: unlike Ollama's variables, a typo is an error, not true."""
    text = str(value).strip().lower()
    if isinstance(value, bool) or text in ("true", "false", "yes", "no", "on", "off", "1", "0"):
        return _bool(value)
    raise ValueError(f"must be true or false, got {value!r}")


def _size(value: Any) -> int:
    """Bytes from an int or a string such as "8GiB", "512MB", "0"."""
    if isinstance(value, bool):
        raise ValueError("must be a size such as 8GiB")
    if isinstance(value, int):
        number = value
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*", str(value), re.IGNORECASE)
        if not m:
            raise ValueError(f"must be a size such as 8GiB, got {value!r}")
        unit = (m.group(2) or "B").upper().rstrip("B") or "B"
        scale = {"B": 1, "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4,
                 "KI": 1024, "MI": 1024**2, "GI": 1024**3, "TI": 1024**4}[unit]
        number = int(float(m.group(1)) * scale)
    if number < 0:
        raise ValueError("must not be negative")
    return number


def _origins(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else str(value).split(",")
    return tuple(str(item).strip() for item in items if str(item).strip())


def _debug(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return max(0, value)
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    return 1 if _bool(text) else 0


def _path(value: Any) -> Path:
    text = str(value).strip()
    if not text:
        raise ValueError("must be a path")
    return Path(text).expanduser()


def _auth(value: Any) -> str:
    # str(), not the YAML value: an unquoted `auth: no` arrives as False and must not mean none
    text = value.strip().lower() if isinstance(value, str) else ""
    if text not in AUTH_POLICIES:
        raise ValueError(f"must be one of {', '.join(AUTH_POLICIES)}, got {value!r}")
    return text
def _declared_model(item: Any) -> DeclaredModel:
    entry = {"name": item} if isinstance(item, str) else item
    if not isinstance(entry, dict):
        raise ValueError("each entry must be a name or a mapping with name:")
    unknown = sorted(set(entry) - {"name", "preload", "insecure"})
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r} (known: name, preload, insecure)")
    text = entry.get("name")
    if not isinstance(text, str) or not text.strip() or any(c.isspace() for c in text.strip()):
        raise ValueError(f"name must be a model name such as smollm2:135m, got {text!r}")
    name, at, pin = text.strip().partition("@")
    if at and not _DIGEST.fullmatch(pin):
        raise ValueError(f"{text.strip()}: a pin is @sha256: and 64 lower-case hex digits")
    for flag in ("preload", "insecure"):
        if not isinstance(entry.get(flag, False), bool):
            raise ValueError(f"{name}: {flag} must be true or false")
    return DeclaredModel(name, pin or None, entry.get("preload", False),
                         entry.get("insecure", False))


def _models(value: Any) -> Path | tuple[DeclaredModel, ...]:
    """A string is the store's directory (OLLAMA_MODELS); a list declares the models to have."""
    if not isinstance(value, list):
        return _path(value)
    declared = tuple(_declared_model(item) for item in value)
    names = [d.name for d in declared]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"{name} is listed twice")
    return declared


def _host(value: Any) -> HostAddress:
    return parse_host(str(value))


KV_CACHE_TYPES = ("f16", "q8_0", "q4_0")


def _kv_cache_type(value: Any) -> str:
    text = str(value).strip().lower() or "f16"
    if text not in KV_CACHE_TYPES:
        raise ValueError(f"must be one of {', '.join(KV_CACHE_TYPES)}, got {value!r}")
    return text


def _flash_attention(value: Any) -> bool | None:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return None
    return _bool(value)


def _context_length(value: Any) -> int:
    number = _int(0)(value)
    return number or 4096  # Ollama: 0 means automatic, which is 4096 without a large GPU


_KEYS: dict[str, Callable[[Any], Any]] = {
    "host": _host,
    "models": _models,
    "models_dir": _path,  # the store's directory when models: is the list
    "keep_alive": _duration(allow_forever=True),
    "max_loaded_models": _int(0),
    "num_parallel": _int(0),
    "max_queue": _int(1),
    "origins": _origins,
    "context_length": _context_length,
    "debug": _debug,
    "max_memory": _size,
    "memory_fraction": _float(0.01),
    "num_threads": _int(0),
    "idle_exit": _duration(allow_forever=False),
    "drain_timeout": _duration(allow_forever=False),
    "load_timeout": _duration(allow_forever=False),
    "noprune": _bool,
    "prompt_cache": _size,
    "kv_cache_type": _kv_cache_type,
    "flash_attention": _flash_attention,
    "auth": _auth,
    "allow_unauthenticated_network": _strict_bool,
    "keys_file": _path,
    "public_metrics": _strict_bool,
    "metrics": _bool,
    "max_request_bytes": _size,
    "max_num_ctx": _int(1),
    "max_num_predict": _int(1),
    "max_keep_alive": _duration(allow_forever=False),
    "max_messages": _int(1),
    "max_stop": _int(0),
    "max_stop_length": _int(1),
    "min_free_disk": _size,
}

ENVIRONMENT: dict[str, str] = {
    "OLLAMA_HOST": "host",
    "OLLAMA_MODELS": "models",
    "OLLAMA_KEEP_ALIVE": "keep_alive",
    "OLLAMA_MAX_LOADED_MODELS": "max_loaded_models",
    "OLLAMA_NUM_PARALLEL": "num_parallel",
    "OLLAMA_MAX_QUEUE": "max_queue",
    "OLLAMA_ORIGINS": "origins",
    "OLLAMA_CONTEXT_LENGTH": "context_length",
    "OLLAMA_DEBUG": "debug",
    "OLLAMA_NOPRUNE": "noprune",
    "OLLAMA_LOAD_TIMEOUT": "load_timeout",
    "OLLAMA_PROMPT_CACHE": "prompt_cache",
    "OLLAMA_KV_CACHE_TYPE": "kv_cache_type",
    "OLLAMA_FLASH_ATTENTION": "flash_attention",
}


def _convert(source: str, key: str, value: Any) -> Any:
    try:
        return _KEYS[key](value)
    except ValueError as exc:
        raise ConfigError(source, key, str(exc)) from None


def _read_yaml(path: Path) -> Mapping[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), None, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), None, f"cannot read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(str(path), None, f"{where}{problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), None, "must be a mapping of keys to values")
    return data


def load_config(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Build the Config: defaults, then the YAML file, then ``OLLAMA_*`` variables.

    ``path`` None means /etc/llmd/llmd.yaml if it exists; an explicit path must exist.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    set_by: dict[str, str] = {}  # key -> the file or variable that gave its value
    sources: list[str] = ["defaults"]

    if path is None and DEFAULT_CONFIG_PATH.exists():
        path = DEFAULT_CONFIG_PATH
    if path is not None:
        for key, value in _read_yaml(path).items():
            if key not in _KEYS:
                known = ", ".join(sorted(_KEYS))
                raise ConfigError(str(path), str(key), f"unknown key (known keys: {known})")
            converted = _convert(str(path), key, value)
            set_by[key] = str(path)
            if key == "models" and isinstance(converted, tuple):
                values["declared_models"] = converted
            elif key == "models_dir" or key == "models":
                if "models" in values:
                    raise ConfigError(str(path), key, "the store's directory is given twice "
                                      "(models: a path, and models_dir:)")
                values["models"] = converted
            else:
                values[key] = converted
        sources.append(str(path))

    for var, key in ENVIRONMENT.items():
        raw = env.get(var)
        if raw is None:
            continue
        raw = raw.strip().strip("\"'")
        if raw == "" and key not in ("origins", "host"):
            continue
        values[key] = _convert(var, key, raw)
        set_by[key] = var
        sources.append(var)

    if "models" not in values:
        values["models"] = _default_models_dir()
    if "keys_file" not in values:
        state = os.environ.get("STATE_DIRECTORY")
        if state:
            values["keys_file"] = Path(state.split(":")[0]) / KEYS_FILE_NAME
    config = Config(**values, source=", ".join(sources))
    if not math.isinf(config.keep_alive) and config.keep_alive > config.max_keep_alive:
        where = "OLLAMA_KEEP_ALIVE" if "OLLAMA_KEEP_ALIVE" in sources else sources[-1]
        raise ConfigError(where, "keep_alive",
                          f"must be at most max_keep_alive ({format_duration(config.max_keep_alive)})")
    _check_together(config, set_by)
    return config


def _check_together(config: Config, set_by: Mapping[str, str]) -> None:
    """Rules between keys, named after the source that set the offending one."""
    cache = config.prompt_cache
    if cache:
        budget = config.max_memory or int(_physical_memory() * config.memory_fraction)
        if cache > budget:
            raise ConfigError(
                set_by.get("prompt_cache", "defaults"), "prompt_cache",
                f"{cache} bytes is more than the memory budget ({budget} bytes)",
            )
    if config.flash_attention is False and config.kv_cache_type != "f16":
        # llama.cpp cannot read a quantized V cache without flash attention
        raise ConfigError(
            set_by.get("kv_cache_type", "defaults"), "kv_cache_type",
            f"{config.kv_cache_type} needs flash attention, which flash_attention turns off",
        )


def _physical_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
