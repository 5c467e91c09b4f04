#!/usr/bin/env bash
# Run a benchmark against the adapter (and its bundled plugins) as they are at a commit, without
# touching the work tree: the commit is exported with `git archive` to a temporary folder that is
# put first on PYTHONPATH (the benchmarks and the virtualenv stay the work tree's).
#
#   bench/at-commit.sh ab31ba1 .venv/bin/python bench/send_cycle.py --ledger-sizes 100000
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: bench/at-commit.sh COMMIT COMMAND [ARGS...]" >&2
  exit 2
fi
commit=$1
shift
root=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
export_dir=$(mktemp -d /tmp/yibao-at-commit.XXXXXX)
trap 'rm -rf "$export_dir"' EXIT
git -C "$root" archive "$commit" adapter plugins | tar -x -C "$export_dir"
path=$export_dir
for plugin in "$export_dir"/plugins/adapter-*; do
  path=$path:$plugin
done
echo "adapter code: $(git -C "$root" rev-parse --short "$commit") exported to $export_dir" >&2
PYTHONPATH=$path${PYTHONPATH:+:$PYTHONPATH} "$@"
