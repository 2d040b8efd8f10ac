#!/usr/bin/env bash
# Install livecell, its training extra and its development tools into the active Python.
#
# torch comes first, pinned to the CPU build, where no torch is present: an
# unpinned torch from the registry drags in several GB of CUDA packages.
# Set LIVECELL_TORCH to another requirement (e.g. "torch==2.13.0+cu126") to change it.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}

if ! "$python" -c "import torch" >/dev/null 2>&1; then
    "$python" -m pip install --quiet "${LIVECELL_TORCH:-torch==2.13.0}"
fi
"$python" -m pip install --quiet -e ".[train,eval,dev]"

# Headless Chromium for the dashboard's browser test (tests/dashboard/test_dashboard_e2e.py):
# Debian's chromium and chromium-driver, where apt-get exists and we are root or have
# password-less sudo. Elsewhere that test is skipped and says why.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    apt=""
    if command -v apt-get >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ]; then
            apt="apt-get"
        elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            apt="sudo -n apt-get"
        fi
    fi
    if [ -n "$apt" ]; then
        export DEBIAN_FRONTEND=noninteractive
        packages="chromium chromium-driver"
        $apt install -y -qq --no-install-recommends $packages >/dev/null \
            || { $apt update -qq >/dev/null && $apt install -y -qq --no-install-recommends $packages >/dev/null; } \
            || echo "setup.sh: could not install $packages; the dashboard browser test will be skipped" >&2
    else
        echo "setup.sh: no chromium/chromedriver and no apt-get as root; the dashboard browser test will be skipped" >&2
    fi
fi
"$python" -m livecell --version
