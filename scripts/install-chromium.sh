#!/usr/bin/env bash
# Installs Debian's Chromium for the WebAuthn browser test (packages/identity/test/browser-webauthn.test.ts), if it
# is not there yet. Idempotent; says nothing on stdout (apt's chatter goes to stderr).
set -euo pipefail
if [ ! -x /usr/bin/chromium ]; then
  {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
  } >&2
fi
