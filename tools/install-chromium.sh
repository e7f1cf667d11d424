#!/usr/bin/env bash
# install-chromium.sh: makes sure Debian's chromium is there for the upload page's browser test
# (cmd/pipeline/browser_test.go). Installs it with apt-get when missing and this user can;
# otherwise says the browser test will be skipped. Never fails the caller.
set -uo pipefail
if command -v chromium >/dev/null || command -v chromium-browser >/dev/null || [ -n "${PIPELINE_CHROMIUM:-}" ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "install-chromium: installing Debian's chromium for the browser test" >&2
  if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; then
    exit 0
  fi
  echo "install-chromium: apt-get could not install chromium; the browser test will be skipped" >&2
else
  echo "install-chromium: no chromium and no way to install it (needs root and apt-get); the browser test will be skipped" >&2
fi
exit 0
