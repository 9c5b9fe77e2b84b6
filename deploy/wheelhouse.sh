#!/usr/bin/env bash
# Fill deploy/wheelhouse/ with wheels of everything the server image installs: the project's
# dependencies (read from pyproject.toml), its build backend (hatchling) and pip itself.
#
#   deploy/wheelhouse.sh            (skipped when pyproject.toml has not changed since)
#
# The Dockerfile installs from this directory, with no index, when it holds wheels; when it
# is empty the image installs from PyPI instead. Use it where `docker build` has no network
# (an engine started with --bridge=none) or no route to PyPI of its own. The wheels are made
# by this machine's Python, so it must be the image's Python version (3.11; set PYTHON to
# choose another interpreter).
set -euo pipefail
cd "$(dirname "$0")/.."
out=deploy/wheelhouse
python=${PYTHON:-python3}

stamp=$("$python" - <<'EOF'
import hashlib, sys
print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest()[:16],
      f"py{sys.version_info[0]}.{sys.version_info[1]}")
EOF
)
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ]; then
  echo "wheelhouse is up to date ($(find "$out" -name '*.whl' | wc -l) wheels)"
  exit 0
fi

mapfile -t requirements < <("$python" - <<'EOF'
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))
for line in project["project"]["dependencies"] + project["build-system"]["requires"]:
    print(line)
print("pip")
EOF
)
mkdir -p "$out"
find "$out" -name '*.whl' -delete
rm -f "$out/.stamp"
echo "building ${#requirements[@]} requirements and their dependencies into $out"
"$python" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$out" "${requirements[@]}"
echo "$stamp" >"$out/.stamp"
echo "wheelhouse: $(find "$out" -name '*.whl' | wc -l) wheels, $(du -sh "$out" | cut -f1)"
