#!/usr/bin/env bash
# Build (once, cached) llama.cpp's own llama-server and llama-batched-bench from the llama.cpp sources
# vendored in the llama-cpp-python sdist that pyproject.toml pins, so both sides run the same llama.cpp.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/.*"llama-cpp-python>=\([0-9.]*\)".*/\1/p' pyproject.toml)
out=.cache/reference/llama-cpp-python-$version
if [ -x "$out/build/bin/llama-server" ] && [ -x "$out/build/bin/llama-batched-bench" ]; then
  echo "$out/build/bin"; exit 0
fi
mkdir -p .cache/reference
.venv/bin/pip download -q --no-deps --no-binary :all: "llama-cpp-python==$version" -d .cache/reference >&2
rm -rf "$out"; tar -xzf ".cache/reference/llama_cpp_python-$version.tar.gz" -C .cache/reference
[ -d "$out" ] || mv ".cache/reference/llama_cpp_python-$version" "$out"
cmake -S "$out/vendor/llama.cpp" -B "$out/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=ON -DLLAMA_BUILD_SERVER=ON >&2
cmake --build "$out/build" -j"$(nproc)" --target llama-server llama-batched-bench >&2
echo "$out/build/bin"
