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
"$python" -m livecell --version
