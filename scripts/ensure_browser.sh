#!/usr/bin/env bash
# Install headless Chromium (Debian package `chromium`) for tests/web if it is
# missing. Needs root; a no-op when chromium is already on PATH.
# Called by tests/web when CI=true or BAI_INSTALL_BROWSER=1 (as root).
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "ensure_browser: chromium missing and not root; install the Debian package 'chromium'" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
command -v chromium
