#!/usr/bin/env bash
# Tells the operator a release has started, so the receiver's watches poll now (docs/receiver.md).
# Usage: push-release.sh URL   with URL the receiver's address plus its status.url, e.g.
#   https://hooks.example.com/hook/3f2a...   and the token in $CHANGEORDER_HOOK_TOKEN.
# Signs with HMAC-SHA256 (timestamp + body), so a logged request cannot be replayed later.
set -euo pipefail
url=${1:?usage: push-release.sh URL}
token=${CHANGEORDER_HOOK_TOKEN:?set CHANGEORDER_HOOK_TOKEN}
body=${2:-'{"event":"release started"}'}
ts=$(date +%s)
sig=$(printf '%s.%s' "$ts" "$body" | openssl dgst -sha256 -hmac "$token" -hex | sed 's/^.* //')
curl -fsS --max-time 10 -X POST \
  -H "X-Changeorder-Timestamp: $ts" \
  -H "X-Changeorder-Signature: sha256=$sig" \
  -H "Content-Type: application/json" \
  --data "$body" "$url"
