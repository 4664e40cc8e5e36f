#!/usr/bin/env bash
# Builds the GPU machine's binaries for several branches into one small bundle, for A/B runs in
# one device call: `bash scripts/bundle-branches.sh main branch-a branch-b` checks out each
# branch in turn (the work tree must be clean; the current branch is restored), runs
# `cargo xtask gpu-bundle`, and keeps its bench and GPU tests, stripped and gzipped (about 2 MB
# each), as gpu-bundle/bin/bench-BRANCH.gz and test-gpu-BRANCH.gz. The current branch is built
# last (and added where it is not listed), so the bundle's scripts and shapes are its, as
# `cargo xtask gpu-bundle` copies them. The peers are left out (45 MB); add them for run-bench.sh.
# On the GPU machine: `gpu-bundle/run-branches.sh main branch-a branch-b`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[ -z "$(git status --porcelain --untracked-files=no)" ] || { echo "the work tree has changes; commit or stash them"; exit 1; }
back=$(git rev-parse --abbrev-ref HEAD)
stage=$(mktemp -d)
trap 'git checkout -q "$back"; rm -rf "$stage"' EXIT
branches=()
for branch in "$@"; do [ "$branch" = "$back" ] || branches+=("$branch"); done
for branch in "${branches[@]}" "$back"; do
  git checkout -q "$branch"
  cargo xtask gpu-bundle > "$stage/build-$branch.log" 2>&1 || { tail -20 "$stage/build-$branch.log"; exit 1; }
  strip -o "$stage/bench-$branch" gpu-bundle/bin/bench-pqtopk
  strip -o "$stage/test-gpu-$branch" gpu-bundle/bin/test-gpu
  echo "built $branch ($(git rev-parse --short HEAD))"
done
rm -rf gpu-bundle/peers gpu-bundle/bin/*
for f in "$stage"/bench-* "$stage"/test-gpu-*; do gzip -6 -c "$f" > "gpu-bundle/bin/$(basename "$f").gz"; done
du -sh gpu-bundle
