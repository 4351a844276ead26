#!/usr/bin/env bash
# Times Cloudflare CIRCL's TKN20 CP-ABE (BLS12-381) against CIRCL's own pairing in one Go process, for the peers
# table of docs/benchmarks.md. Not run by CI. Installs Debian's Go and CIRCL packages if they are missing (root).
#   bash bench/peers/circl.sh        # prints the markdown table (bench/peers/table.ts) with MedShare measured beside
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
gocode=/usr/share/gocode
if ! command -v go >/dev/null || [ ! -d "$gocode/src/github.com/cloudflare/circl/abe/cpabe/tkn20" ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends golang-go golang-github-cloudflare-circl-dev >&2
fi
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
echo "go: $(go version | cut -d' ' -f3); circl: $(dpkg-query -W -f='${Version}' golang-github-cloudflare-circl-dev)" >&2
# Debian ships CIRCL as GOPATH sources; build in GOPATH mode against them (no network, no module download).
GO111MODULE=off GOPATH="$gocode" GOCACHE="$build/cache" go build -o "$build/circl-bench" "$here/circl/main.go"
"$build/circl-bench" | node --import tsx "$here/table.ts"
