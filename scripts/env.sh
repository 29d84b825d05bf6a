# Sourced by scripts/ganlab and scripts/test: installs libtorch once per machine (see
# scripts/setup-libtorch) and exports what cargo needs to find it.
GANLAB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
eval "$("$GANLAB_ROOT/scripts/setup-libtorch" --env)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$GANLAB_ROOT/target}"
