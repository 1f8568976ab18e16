#!/usr/bin/env bash
# Build the browser UI into clients/web/dist/ (not committed): npm ci when
# node_modules is missing or older than package-lock.json, type-check with tsc,
# bundle clients/web/src/main.ts with esbuild, copy clients/web/static/.
# Idempotent: the same sources give the same dist/. Envoy serves dist/ under
# /ui/ when it has an index.html (re-render and restart Envoy after a rebuild).
# The TypeScript client in clients/web/src/gen/ comes from scripts/gen_protos.py.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WEB="$ROOT/clients/web"
cd "$ROOT"

if [ ! -x node_modules/.bin/esbuild ] || [ ! -x node_modules/.bin/tsc ] \
   || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

node_modules/.bin/tsc -p "$WEB/tsconfig.json"

tmp="$WEB/dist.tmp"
rm -rf "$tmp"
mkdir -p "$tmp"
cp "$WEB"/static/* "$tmp"/
node_modules/.bin/esbuild "$WEB/src/main.ts" \
  --bundle --minify --format=iife --target=es2020 \
  --log-level=warning --outfile="$tmp/app.js"
rm -rf "$WEB/dist"
mv "$tmp" "$WEB/dist"
echo "built $(cd "$WEB/dist" && ls | tr '\n' ' ')in clients/web/dist"
