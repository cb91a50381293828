#!/bin/sh
# Usage: packaging/llama-wheel.sh native|portable|source CACHE_DIR [PIP]
#        packaging/llama-wheel.sh cflags
#
# The one place llama.cpp is configured, for every build of it: the llama-cpp-python wheel of the
# development venv (native), the packages' wheel (portable: every CPU variant, chosen at load
# time), and bench/build-reference.sh's llama-server (source: the patched source tree, built with
# the flags that `cflags` prints). Prints the path of the wheel or of the source tree.
#
# No build contains AMX tile code. llama.cpp's AMX matmul loads a tile configuration that the
# compiler may build on the stack and partly optimise away: `ldtilecfg` then faults with a general
# protection fault on the first multi-token batch, on every Sapphire Rapids or newer Xeon
# (llama.cpp #20824, open; #26954, the unmerged fix). Whether a build crashes depends on the
# compiler's code generation, not on the source, so no build is trusted with it: the native build
# drops the AMX ISA extensions that -march=native would enable, and the portable build's
# sapphirerapids variant is built without its AMX features (AVX-512 VNNI/BF16 stay). Those hosts
# run the AVX-512 VNNI kernels instead; tests/packaging/test_cpu_paths.py guards it.
#
# The wheel lands in a directory keyed by version, patch, flags and Python version, built
# with --no-cache-dir: pip's own wheel cache is keyed by the sdist alone and would silently hand
# back a wheel built with other flags.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
mode=${1:?usage: llama-wheel.sh native|portable|source CACHE_DIR [PIP]}
# -march=native turns on every ISA extension the build host has; an explicit -mno-* wins over it
# whatever the order (CFLAGS seed CMAKE_C_FLAGS, no quoting through CMAKE_ARGS needed)
no_amx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
if [ "$mode" = cflags ]; then
    echo "$no_amx"; exit 0
fi
cache=${2:?usage: llama-wheel.sh native|portable|source CACHE_DIR [PIP]}
pip=${3:-pip}

version=$(sed -n 's/^llama-cpp-python==//p' "$here/requirements.lock")
cflags=$no_amx
case $mode in
    native)
        cmake_args="-DGGML_NATIVE=ON" ;;
    portable)
        # GGML_BACKEND_DIR puts the CPU-variant modules into the wheel's llama_cpp/lib, where the
        # runner loads them from (llmd/runner/engine.py); typed STRING because cmake would
        # otherwise make the relative path absolute under pip's temporary source directory.
        cmake_args="-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DGGML_BACKEND_DIR:STRING=llama_cpp/lib" ;;
    source)
        cmake_args= ;;
    *)
        echo "llama-wheel.sh: unknown mode '$mode' (native, portable or source)" >&2; exit 2 ;;
esac

mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
pyver=$("${PYTHON:-python3}" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
# what the sapphirerapids variant loses; the source directory and wheels are keyed by it
patch='/ggml_add_cpu_backend_variant(sapphirerapids/s/ AMX_TILE AMX_INT8//'
key() { sha256sum | cut -c1-12; }

# The sdist, unpacked once per version and patch, with the sapphirerapids variant's AMX removed
src=$cache/llama-cpp-python-$version-src-$(printf '%s\n' "$version" "$patch" | key)
if [ ! -d "$src" ]; then
    rm -rf "$src.tmp" && mkdir -p "$src.tmp"
    $pip download -q --no-deps --no-binary llama-cpp-python "llama-cpp-python==$version" -d "$src.tmp" >&2
    tar -xzf "$src.tmp/llama_cpp_python-$version.tar.gz" -C "$src.tmp"
    cmakelists=$src.tmp/llama_cpp_python-$version/vendor/llama.cpp/ggml/src/CMakeLists.txt
    sed -i "$patch" "$cmakelists"
    if grep -n 'ggml_add_cpu_backend_variant(sapphirerapids.*AMX' "$cmakelists" >&2; then
        echo "llama-wheel.sh: the sapphirerapids variant still names AMX features" >&2; exit 1
    fi
    mv "$src.tmp/llama_cpp_python-$version" "$src"
    rm -rf "$src.tmp"
fi
if [ "$mode" = source ]; then
    echo "$src"; exit 0
fi

dir=$cache/llama-cpp-python-$version-$mode-$(printf '%s\n' "$version" "$patch" "$cmake_args" "$cflags" "$pyver" | key)
if ! ls "$dir"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    echo "llama-wheel.sh: compiling llama-cpp-python $version ($mode; takes a few minutes)" >&2
    rm -rf "$dir.tmp"
    CFLAGS=$cflags CXXFLAGS=$cflags CMAKE_ARGS=$cmake_args CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)} \
        $pip wheel --no-deps --no-cache-dir "$src" -w "$dir.tmp" >&2
    mv "$dir.tmp" "$dir"
fi
ls "$dir"/llama_cpp_python-*.whl
