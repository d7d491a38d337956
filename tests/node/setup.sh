#!/usr/bin/env sh
# Set-up for the Node and browser tests: Debian's Chromium (when missing, and when this user can
# install it) and the test folder's npm packages (playwright-core, Vite, webpack, esbuild, workerd
# and wrangler for the Cloudflare Workers tests, SvelteKit, Astro and their Cloudflare adapters,
# nitropack, and the built package), at package.json's versions.
set -eu
cd "$(dirname "$0")"
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "tests/node/setup.sh: installing Debian's chromium for the browser test" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "tests/node/setup.sh: chromium is missing and cannot be installed here; the browser test will fail" >&2
  fi
fi
npm install --no-audit --no-fund --loglevel=error >/dev/null
