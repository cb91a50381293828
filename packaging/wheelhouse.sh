#!/bin/sh
# Usage: packaging/wheelhouse.sh CACHE_DIR
#
# Makes sure CACHE_DIR holds a wheel for every pin in requirements.lock (plus the build backend
# that `pip install .` of llmd needs) and prints the directories to give pip as --find-links,
# space-separated. debian/rules and rpm/llmd.spec then install with --no-index, so a package
# build is reproducible, needs no network once the cache is filled, and takes seconds.
#
# llama-cpp-python is compiled by llama-wheel.sh, for any x86-64 CPU: GGML_NATIVE=OFF, and every
# CPU variant of ggml (x64 baseline, SSE4.2, AVX, AVX2, AVX-512...) built as its own module, of
# which ggml picks the best one for the running CPU at load time; no variant has AMX code.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
cache=${1:?usage: wheelhouse.sh CACHE_DIR}
python=${PYTHON:-/usr/bin/python3}
lock=$here/requirements.lock
setuptools_pin=setuptools==84.2.1
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

# pip from the build machine's own Python, kept apart from any development venv
tools=$cache/tools-py$pyver
if [ ! -x "$tools/bin/pip" ]; then
    "$python" -m venv "$tools" >&2
fi
pip() { "$tools/bin/pip" --disable-pip-version-check -q "$@"; }

key() { sha256sum | cut -c1-12; }

llama_wheel=$(PYTHON=$python "$here/llama-wheel.sh" portable "$cache" "$tools/bin/pip")
llama_dir=$(dirname "$llama_wheel")

deps_dir=$cache/deps-py$pyver-$( (grep -v '^llama-cpp-python==' "$lock"; echo "$setuptools_pin") | key)
if [ ! -f "$deps_dir/.complete" ]; then
    echo "wheelhouse: collecting the locked dependencies" >&2
    rm -rf "$deps_dir"
    grep -v '^llama-cpp-python==' "$lock" > "$cache/requirements-deps.txt"
    # systemd-python has no wheel on PyPI: this builds it (libsystemd-dev, pkg-config)
    pip wheel --no-deps --no-cache-dir --use-pep517 -r "$cache/requirements-deps.txt" "$setuptools_pin" -w "$deps_dir" >&2
    touch "$deps_dir/.complete"
fi

echo "$llama_dir $deps_dir"
