#!/usr/bin/env bash
# The whole test suite: installs what the tests need (idempotently), then runs every test of the
# workspace. This is the command README.md names and .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."

export MW_VENV="${MW_VENV:-$HOME/.cache/millwright/venv}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/millwright/target}"
bash scripts/setup-test-env.sh
export MW_PYTHON="$MW_VENV/bin/python"

if [ ! -d ../shared/datasets ]; then
  echo "note: ../shared/datasets is absent; dataset-based tests will print that they skip" >&2
fi

cargo test --workspace "$@"
