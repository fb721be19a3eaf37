#!/usr/bin/env bash
# Build the book's website into _build/html in strict mode: every Sphinx warning is an error,
# references are nitpicky, and the build keeps going to report all warnings at once.
# Notebooks are not executed (execute_notebooks is "off"); their committed outputs are rendered.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [[ "${GEMMA4_SETUP_DONE:-0}" != "1" ]]; then
    bash scripts/setup.sh
fi

# A fresh build every time: Sphinx only re-reads changed pages, so an incremental build could
# pass while an unchanged page still carries a warning.
rm -rf _build/html _build/.doctrees _build/jupyter_execute

start=$SECONDS
"$ROOT/.venv/bin/jupyter-book" build "$ROOT" --builder html --all -W -n --keep-going
echo "[build_book] site built in _build/html in $((SECONDS - start)) s"
