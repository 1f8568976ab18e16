#!/usr/bin/env bash
# Lint the contracts under proto/ with buf, and check them for breaking
# changes against the main branch.
#
#   scripts/lint_protos.sh            # lint + breaking (when main has proto/)
#   BUF_AGAINST_REF=origin/main scripts/lint_protos.sh
#
# buf comes from npm (package.json pins @bufbuild/buf; run `npm ci` once).
# Third-party protos (google/api, google/rpc) are not in git: the generator
# vendors them into proto/third_party, so it runs first (into a throw-away
# directory, leaving gen/ alone).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
BUF=(npx --no-install buf)

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# 1. Vendor proto/third_party (and prove that everything compiles).
# (mypy-protobuf reports every file it writes on stderr; keep only the rest.)
"$PYTHON" scripts/gen_protos.py --check-into "$tmp/gen" >/dev/null \
  2> >(grep -v '^Writing mypy to ' >&2)

# 2. Lint (rules in buf.yaml).
"${BUF[@]}" lint
echo "buf lint: ok"

# 3. Breaking changes against main. `--against .git#branch=main` alone does
#    not work here: main's tree lacks the git-ignored proto/third_party, so
#    its imports of google/api/annotations.proto would not resolve. Export
#    main's proto/ and buf.yaml instead, add the vendored protos, and build
#    that into an image whose targets are our files only (third-party protos
#    ride along as imports, which --exclude-imports leaves out of the
#    comparison).
ref="${BUF_AGAINST_REF:-}"
if [[ -z "$ref" ]]; then
  for candidate in main origin/main; do
    if git rev-parse --verify --quiet "$candidate^{commit}" >/dev/null; then
      ref="$candidate"
      break
    fi
  done
fi
if [[ -z "$ref" ]]; then
  echo "buf breaking: skipped (no main branch in this clone)"
  exit 0
fi
if ! git cat-file -e "$ref:proto" 2>/dev/null; then
  echo "buf breaking: skipped ($ref has no proto/ directory yet)"
  exit 0
fi

against="$tmp/against"
mkdir -p "$against"
git archive "$ref" proto | tar -x -C "$against"
if git cat-file -e "$ref:buf.yaml" 2>/dev/null; then
  git show "$ref:buf.yaml" >"$against/buf.yaml"
else
  cp buf.yaml "$against/buf.yaml"
fi
rm -rf "$against/proto/third_party"
cp -R proto/third_party "$against/proto/third_party"
"${BUF[@]}" build "$against" --path "$against/proto/bai" -o "$tmp/against.binpb"
"${BUF[@]}" breaking --against "$tmp/against.binpb" --exclude-imports
echo "buf breaking against $ref: ok"
