#!/usr/bin/env bash
# Refresh the web UI's vendored JavaScript (src/netfate/orchestrator/ui/static/) from the npm
# registry. Not part of the install: the files are committed, so the UI works offline and
# `make install` builds nothing. Run by hand to move to newer versions, then commit.
set -euo pipefail
HTMX=${HTMX:-2.0.11}
SSE=${SSE:-2.2.4}
dest="$(cd "$(dirname "$0")/.." && pwd)/src/netfate/orchestrator/ui/static"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
npm pack --silent "htmx.org@$HTMX" "htmx-ext-sse@$SSE" >/dev/null
mkdir htmx sse
tar xzf "htmx.org-$HTMX.tgz" -C htmx
tar xzf "htmx-ext-sse-$SSE.tgz" -C sse
install -m 0644 htmx/package/dist/htmx.min.js "$dest/htmx.min.js"
install -m 0644 htmx/package/LICENSE "$dest/htmx.LICENSE"
install -m 0644 sse/package/dist/sse.js "$dest/htmx-ext-sse.js"
install -m 0644 sse/package/LICENSE "$dest/htmx-ext-sse.LICENSE"
echo "vendored htmx $HTMX and htmx-ext-sse $SSE into $dest"
