"""Load one module of an installed package without running that package's ``__init__``.

Two packages we use put heavy imports in their ``__init__``: ``llama_cpp`` (its high-level
``Llama`` class pulls in numpy, jinja2 and diskcache, and loading it maps libllama and every
ggml backend) and ``gguf`` (numpy, its reader, writer and quantizers). The idle daemon needs only
their pure-Python tables (a GBNF grammar converter, the GGUF constants), and the runner needs
only the ctypes bindings. Importing those alone keeps the daemon's idle memory and every
process's start-up small.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def _package_dir(package: str) -> Path:
    # find_spec of a top-level name locates the package without importing it
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"package {package!r} is not installed", name=package)
    return Path(next(iter(spec.submodule_search_locations)))


def standalone(package: str, module: str) -> ModuleType:
    """``package.module`` when it is already imported, else that file loaded on its own.

    Only for modules that import nothing from their own package. The copy is registered as
    ``llmd._standalone.<package>.<module>``, so a later full ``import package`` is unaffected.
    """
    full = sys.modules.get(f"{package}.{module}")
    if full is not None:
        return full
    alias = f"llmd._standalone.{package}.{module}"
    loaded = sys.modules.get(alias)
    if loaded is not None:
        return loaded
    path = _package_dir(package) / f"{module}.py"
    spec = importlib.util.spec_from_file_location(alias, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}", name=f"{package}.{module}")
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[alias] = loaded
    try:
        spec.loader.exec_module(loaded)
    except BaseException:
        del sys.modules[alias]
        raise
    return loaded


def bare_package(package: str) -> ModuleType:
    """Register ``package`` with its ``__path__`` but without running its ``__init__``.

    Its submodules then import as usual. For a process that owns its imports (the runner):
    anything that later imports ``package`` gets this bare module, not the package's API.
    """
    found = sys.modules.get(package)
    if found is not None:
        return found
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"package {package!r} is not installed", name=package)
    bare = importlib.util.module_from_spec(spec)
    sys.modules[package] = bare
    return bare


def lazy(name: str) -> ModuleType:
    """Module ``name``, executed on its first attribute access (importlib's LazyLoader).

    For a dependency that only some requests use: ``import`` time and memory are paid then, not
    at start-up. Once registered, a plain ``import name`` elsewhere gets the same module.
    """
    found = sys.modules.get(name)
    if found is not None:
        return found
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"module {name!r} is not installed", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module
