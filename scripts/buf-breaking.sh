#!/usr/bin/env bash
# `bun run buf:breaking`: fails when proto/ (as in the working tree, uncommitted edits included)
# breaks the wire or JSON compatibility of the read API or the book events against main.
#
# What "main" is depends on where it runs (a clean CI clone, a branch, a developer's edits):
# - BUF_BREAKING_AGAINST set: that buf input, as is (e.g. '.git#tag=v1.2.0').
# - proto/ differs from HEAD (uncommitted edits): against HEAD.
# - HEAD is a commit main does not contain (a branch): against the merge base with main, so
#   changes made on main meanwhile are not held against the branch.
# - HEAD is main's tip (a clean clone of main in CI): against the main before the last commit
#   that changed proto/; comparing main with itself would check nothing.
# main is the local branch `main`, else `origin/main`. A clone without that history (a shallow
# one) fails with a message instead of passing unchecked.
set -euo pipefail
cd "$(dirname "$0")/.."

against=${BUF_BREAKING_AGAINST:-}
if [ -z "$against" ]; then
  main=""
  for candidate in refs/heads/main refs/remotes/origin/main; do
    if git rev-parse --verify -q "$candidate^{commit}" >/dev/null; then
      main=$candidate
      break
    fi
  done
  if [ -z "$main" ]; then
    echo "buf breaking: no main branch in this clone (neither main nor origin/main); set BUF_BREAKING_AGAINST" >&2
    exit 1
  fi
  head=$(git rev-parse HEAD)
  if ! git diff --quiet HEAD -- proto || [ -n "$(git ls-files --others --exclude-standard -- proto)" ]; then
    base=$head
    why="the last commit (proto/ has uncommitted changes)"
  elif [ "$(git rev-parse "$main")" = "$head" ]; then
    # The last commit that changed proto/, against what it changed: comparing with HEAD's parent
    # would check nothing whenever that commit left proto/ alone.
    changed=$(git log -1 --format=%H -- proto)
    if [ -z "$changed" ] || ! base=$(git rev-parse -q --verify "$changed^1^{commit}"); then
      echo "buf breaking: no earlier proto/ in this clone (a shallow one?); fetch more history or set BUF_BREAKING_AGAINST" >&2
      exit 1
    fi
    why="main before its last change of proto/ ($(git rev-parse --short "$changed"))"
  elif ! base=$(git merge-base HEAD "$main"); then
    echo "buf breaking: HEAD and $main share no history here (a shallow clone?); fetch more history or set BUF_BREAKING_AGAINST" >&2
    exit 1
  else
    why="where this branch left main"
  fi
  # depth: buf fetches that many commits of the ref; the base may lie far back on a long branch.
  against=".git#ref=$base,depth=1000"
  echo "buf breaking: against $base, $why"
fi
exec bunx buf breaking --against "$against"
