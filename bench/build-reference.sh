#!/usr/bin/env bash
# Build (once, cached) llama.cpp's own llama-server and llama-batched-bench from the llama.cpp sources
# vendored in the llama-cpp-python sdist that packaging/requirements.lock pins, so both sides run the same llama.cpp.
set -euo pipefail
cd "$(dirname "$0")/.."
# The same source and flags as the venv's llama-cpp-python (packaging/llama-wheel.sh): no AMX.
src=$(PYTHON=.venv/bin/python packaging/llama-wheel.sh source .cache/reference .venv/bin/pip)
cflags=$(packaging/llama-wheel.sh cflags)
out=$src-build-$(printf '%s\n' "$cflags" | sha256sum | cut -c1-12)
if [ -x "$out/build/bin/llama-server" ] && [ -x "$out/build/bin/llama-batched-bench" ]; then
  echo "$out/build/bin"; exit 0
fi
rm -rf "$out"; mkdir -p "$out"
CFLAGS=$cflags CXXFLAGS=$cflags cmake -S "$src/vendor/llama.cpp" -B "$out/build" -DCMAKE_BUILD_TYPE=Release \
  -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=ON -DLLAMA_BUILD_SERVER=ON >&2
cmake --build "$out/build" -j"$(nproc)" --target llama-server llama-batched-bench >&2
echo "$out/build/bin"
