#!/bin/sh
# Usage: packaging/wheelhouse.sh CACHE_DIR
#
# Makes sure CACHE_DIR holds a wheel for every pin in requirements.lock (plus the build backend
# that `pip install .` of llmd needs) and prints the directories to give pip as --find-links,
# space-separated. debian/rules and rpm/llmd.spec then install with --no-index, so a package
# build is reproducible, needs no network once the cache is filled, and takes seconds.
#
# llama-cpp-python is compiled here, for any x86-64 CPU: GGML_NATIVE=OFF, and every CPU variant
# of ggml (x64 baseline, SSE4.2, AVX, AVX2, AVX-512, AMX...) built as its own module, of which
# ggml picks the best one for the running CPU at load time. Its wheel is kept in a directory
# keyed by version, cmake flags and Python version, and built with --no-cache-dir: pip's own
# wheel cache ignores CMAKE_ARGS and would hand back a -march=native build.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
cache=${1:?usage: wheelhouse.sh CACHE_DIR}
python=${PYTHON:-/usr/bin/python3}
lock=$here/requirements.lock
setuptools_pin=setuptools==84.2.1
# GGML_BACKEND_DIR puts the CPU-variant modules into the wheel's llama_cpp/lib, where the runner
# loads them from (llmd/runner/engine.py); typed STRING because cmake would otherwise make the
# relative path absolute under pip's temporary source directory.
llama_cmake_args="-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DGGML_BACKEND_DIR:STRING=llama_cpp/lib"

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

llama_version=$(sed -n 's/^llama-cpp-python==//p' "$lock")
llama_dir=$cache/llama-cpp-python-$llama_version-$(printf '%s\n' "$llama_version" "$llama_cmake_args" "$pyver" | key)
if ! ls "$llama_dir"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    echo "wheelhouse: compiling llama-cpp-python $llama_version (portable, all CPU variants; takes a while)" >&2
    rm -rf "$llama_dir.tmp"
    CMAKE_ARGS=$llama_cmake_args CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)} \
        pip wheel --no-deps --no-cache-dir --no-binary llama-cpp-python \
        "llama-cpp-python==$llama_version" -w "$llama_dir.tmp" >&2
    mv "$llama_dir.tmp" "$llama_dir"
fi

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
