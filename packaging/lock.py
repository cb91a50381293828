"""Print requirements.lock: the installed versions of llmd's runtime dependencies.

    .venv/bin/python packaging/lock.py > packaging/requirements.lock   (make lock)

Walks llmd's requirements (no extras, so no test tools) through the metadata of what is
installed in the running environment.
"""

from __future__ import annotations

import importlib.metadata as md
import re

from packaging.requirements import Requirement

HEADER = """\
# Exact versions of llmd's runtime dependencies, installed into the packaged virtualenv
# (/usr/lib/llmd) by both debian/rules and rpm/llmd.spec. Regenerate after changing
# pyproject.toml's dependencies: `make lock` (the closure of llmd's requirements in .venv,
# test extras excluded)."""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(root: str) -> dict[str, str]:
    found: dict[str, str] = {}
    todo = [root]
    while todo:
        name = todo.pop()
        if canonical(name) in found:
            continue
        dist = md.distribution(name)
        found[canonical(name)] = dist.version
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    del found[canonical(root)]
    return found


def main() -> None:
    print(HEADER)
    for name, version in sorted(closure("llmd").items()):
        print(f"{name}=={version}")


if __name__ == "__main__":
    main()
