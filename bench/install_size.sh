#!/usr/bin/env bash
# What `make serve` and `make test` install: time and virtualenv size, each run of the Makefile's
# own recipe into a fresh temporary virtualenv. pip's cache is used as it is (the llama-cpp-python
# wheel it built once, the downloads): run this twice for warm-cache numbers.
#   bench/install_size.sh            # prints a Markdown table
set -euo pipefail
cd "$(dirname "$0")/.."

echo "| command | extras | install (s) | virtualenv (MB) | torch installed |"
echo "| --- | --- | --- | --- | --- |"
for row in "serve:.installed-serve:embedded" "test:.installed-test:embedded,train,dev"; do
  IFS=: read -r command stamp extras <<<"$row"
  venv=$(mktemp -d /tmp/rlpa-install-XXXXXX)
  rmdir "$venv"  # the Makefile creates it
  SECONDS=0
  make -s VENV="$venv" "$venv/$stamp" >/dev/null
  seconds=$SECONDS
  "$venv/bin/rlpa" --version >/dev/null  # the install works
  torch=$("$venv/bin/python" -c "import importlib.util as u; print(u.find_spec('torch') and 'yes' or 'no')")
  size=$(du -sm "$venv" | cut -f1)
  echo "| make $command | $extras | $seconds | $size | $torch |"
  rm -rf "$venv"
done
