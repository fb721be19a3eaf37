#!/usr/bin/env bash
# Run every check of the repository and exit non-zero if any of them fails:
#   1. lint: ruff check and ruff format --check over src, tests and benchmarks;
#   2. the package tests and the book-structure tests (pytest, with pytest-timeout),
#      every test but those marked `site`;
#   3. every notebook in notebooks/ re-executed under strict nbval (outputs compared, not --nbval-lax);
#   4. the strict website build (scripts/build_book.sh);
#   5. the offline browser check of the built site (tests/test_site.py, marked `site`, headless
#      Chromium with the network off: no other host, maths typeset, widgets drawn from their saved
#      state, full-page screenshots in _build/screenshots/).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Determinism for the notebooks and tests.
export MPLBACKEND=Agg PYTHONHASHSEED=0 OMP_NUM_THREADS=2

bash scripts/setup.sh || { echo "[test] environment set-up failed" >&2; exit 1; }
export GEMMA4_SETUP_DONE=1
export PATH="$ROOT/.venv/bin:$PATH"
PY="$ROOT/.venv/bin/python"

failed=()
run_step() {
    local name="$1"; shift
    local start=$SECONDS
    echo
    echo "================ [test] ${name} ================"
    if "$@"; then
        echo "[test] ${name}: ok ($((SECONDS - start)) s)"
    else
        echo "[test] ${name}: FAILED ($((SECONDS - start)) s)" >&2
        failed+=("$name")
    fi
}

shopt -s nullglob
notebooks=(notebooks/*.ipynb)
shopt -u nullglob
if [[ ${#notebooks[@]} -eq 0 ]]; then
    echo "[test] no notebooks in notebooks/ yet; nbval has nothing to run"
fi

RUFF="$ROOT/.venv/bin/ruff"
lint() {
    "$RUFF" check src tests benchmarks && "$RUFF" format --check src tests benchmarks
}
run_step "lint" lint

run_step "package and book tests" \
    "$PY" -m pytest -p no:cacheprovider -ra --timeout=900 -m "not site" tests

# Notebooks run in a Jupyter kernel with matplotlib's inline backend, exactly as in JupyterLab and on
# Colab where their committed outputs were produced: under Agg a figure would produce no output at all
# and every figure cell would differ from the committed notebook.
if [[ ${#notebooks[@]} -gt 0 ]]; then
    run_step "notebooks under strict nbval" \
        env MPLBACKEND=module://matplotlib_inline.backend_inline \
        "$PY" -m pytest -p no:cacheprovider -ra --timeout=1800 \
            --nbval --nbval-current-env --nbval-cell-timeout=300 \
            --nbval-sanitize-with tests/nbval_sanitize.cfg \
            "${notebooks[@]}"
fi

run_step "strict site build" bash scripts/build_book.sh

if [[ -f _build/html/index.html ]] && [[ ! " ${failed[*]} " =~ "strict site build" ]]; then
    run_step "browser check of the site" \
        env BOOK_SITE_REQUIRED=1 "$PY" -m pytest -p no:cacheprovider -ra --timeout=600 -m site tests/test_site.py
else
    echo "[test] browser check not run because the site build failed" >&2
    failed+=("browser check of the site")
fi

echo
if [[ ${#failed[@]} -gt 0 ]]; then
    printf '[test] failed step: %s\n' "${failed[@]}" >&2
    exit 1
fi
echo "[test] every step succeeded"
