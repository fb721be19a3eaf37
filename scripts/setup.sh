#!/usr/bin/env bash
# Idempotent environment set-up for a fresh Debian-like machine (also safe to re-run at any time).
#
#   1. creates .venv with python3 if it does not exist;
#   2. installs requirements-dev.txt with constraints.txt (torch pinned to the CPU build), unless every
#      requirement is already satisfied, which is checked in about a second;
#   3. installs Debian's chromium and chromium-driver for the browser check, if either is missing;
#   4. installs the JavaScript the website serves from its own files (MathJax, RequireJS and the
#      Jupyter widget manager, pinned in package.json and package-lock.json) from the npm registry
#      into node_modules/ with `npm ci`, unless the pinned versions are already there; Debian's
#      nodejs and npm are installed first if npm is missing.
#
# Environment: PYTHON (interpreter used to create the venv, default python3).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"

log() { printf '[setup] %s\n' "$*"; }

# --- 1. virtual environment -------------------------------------------------------------------------
if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating $VENV with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
fi

# --- 2. Python requirements -------------------------------------------------------------------------
# A quick check that every line of requirements-dev.txt (following -r includes) and every pin of
# constraints.txt is met by what is installed, and that this checkout is the editable install.
requirements_satisfied() {
    "$VENV/bin/python" - "$ROOT" <<'PY'
import json, sys
from pathlib import Path
from importlib import metadata
try:
    from packaging.requirements import Requirement
except ImportError:
    try:
        from pip._vendor.packaging.requirements import Requirement
    except ImportError:
        sys.exit(1)

root = Path(sys.argv[1]).resolve()

def lines(path):
    for raw in path.read_text().splitlines():
        line = raw.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r ", "--requirement ")):
            yield from lines(path.parent / line.split(maxsplit=1)[1])
        else:
            yield line

def unmet(line):
    if line.startswith(("-e ", "--editable ")):
        target = (root / line.split(maxsplit=1)[1]).resolve()
        try:
            dist = metadata.distribution("gemma4-lite")
            info = json.loads(dist.read_text("direct_url.json") or "{}")
        except Exception:
            return f"{line} (not installed)"
        url = info.get("url", "")
        if not info.get("dir_info", {}).get("editable") or Path(url.removeprefix("file://")).resolve() != target:
            return f"{line} (installed, but not as an editable install of {target})"
        return None
    req = Requirement(line)
    if req.marker is not None and not req.marker.evaluate():
        return None
    try:
        version = metadata.version(req.name)
    except metadata.PackageNotFoundError:
        return f"{line} (not installed)"
    if req.specifier and not req.specifier.contains(version, prereleases=True):
        return f"{line} (found {version})"
    return None

missing = [m for m in map(unmet, lines(root / "requirements-dev.txt")) if m]
missing += [m for m in map(unmet, lines(root / "constraints.txt")) if m]
for m in missing[:5]:
    print(f"[setup] unmet: {m}")
if len(missing) > 5:
    print(f"[setup] ... and {len(missing) - 5} more unmet requirements")
sys.exit(1 if missing else 0)
PY
}

if requirements_satisfied; then
    log "Python requirements already satisfied in .venv"
else
    log "installing requirements-dev.txt (with constraints.txt) into .venv"
    "$VENV/bin/python" -m pip install -r requirements-dev.txt -c constraints.txt
    requirements_satisfied || { log "requirements are still unmet after pip install"; exit 1; }
fi

# --- 3. Chromium for the browser check --------------------------------------------------------------
if [[ ! -x /usr/bin/chromium || ! -x /usr/bin/chromedriver ]]; then
    if [[ "$(id -u)" -eq 0 ]]; then SUDO=(); else SUDO=(sudo); fi
    log "installing Debian's chromium and chromium-driver with apt-get"
    "${SUDO[@]}" apt-get update
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver
else
    log "chromium and chromedriver present"
fi

# --- 4. JavaScript served by the website --------------------------------------------------------------
# book/_ext/offline_assets.py copies these from node_modules/ into the built site, so that maths and
# widgets render without reaching a CDN. `npm ci` installs exactly package-lock.json, with no install
# scripts (nothing but the registry's packages is downloaded).
if ! command -v npm >/dev/null 2>&1; then
    if [[ "$(id -u)" -eq 0 ]]; then SUDO=(); else SUDO=(sudo); fi
    log "installing Debian's nodejs and npm with apt-get"
    "${SUDO[@]}" apt-get update
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm
fi
node_modules_current() {
    node - <<'JS'
const fs = require("fs");
const wanted = JSON.parse(fs.readFileSync("package.json", "utf8")).dependencies;
let ok = true;
for (const [name, version] of Object.entries(wanted)) {
    let found = null;
    try {
        found = JSON.parse(fs.readFileSync(`node_modules/${name}/package.json`, "utf8")).version;
    } catch (error) {}
    if (found !== version) {
        console.log(`[setup] npm package ${name}: want ${version}, found ${found ?? "none"}`);
        ok = false;
    }
}
process.exit(ok ? 0 : 1);
JS
}
if node_modules_current; then
    log "site JavaScript (package-lock.json) already in node_modules"
else
    log "installing the site's JavaScript from package-lock.json into node_modules with npm ci"
    npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
    node_modules_current || { log "node_modules still differs from package.json after npm ci"; exit 1; }
fi
log "done"
