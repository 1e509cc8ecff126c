#!/usr/bin/env bash
# Makes build/python-env, the virtual environment graft's interop tests run Python in
# (tensorboard's EventAccumulator, MlflowClient, onnx.checker, onnxruntime), with exactly the
# versions in tools/python-requirements.txt. Does nothing when it is there and up to date
# (a stamp holds the requirements' checksum). The engine itself never needs Python.
#   tools/python-env.sh            make or update it; prints its python
set -euo pipefail
cd "$(dirname "$0")/.."
env_dir="${GRAFT_PYTHON_ENV:-$PWD/build/python-env}"
requirements="$PWD/tools/python-requirements.txt"
want=$(sha1sum "$requirements" | cut -d' ' -f1)
stamp="$env_dir/.graft-requirements.sha1"
if [[ -x "$env_dir/bin/python3" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "$env_dir/bin/python3"
  exit 0
fi
python=$(command -v python3 || true)
if [[ -z "$python" ]]; then
  echo "graft: tools/python-env.sh needs python3 (Debian packages python3 and python3-venv)" >&2
  exit 1
fi
echo "graft: making $env_dir from tools/python-requirements.txt" >&2
rm -rf "$env_dir"
mkdir -p "$(dirname "$env_dir")"
"$python" -m venv "$env_dir" >&2
"$env_dir/bin/python3" -m pip install -q --disable-pip-version-check --only-binary=:all: -r "$requirements" >&2
echo "$want" > "$stamp"
echo "$env_dir/bin/python3"
