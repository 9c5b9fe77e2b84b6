#!/usr/bin/env bash
# Check a running assistd (e.g. the compose stack) from the outside:
#
#   deploy/smoke.sh [BASE_URL] [API_KEY]      (default http://127.0.0.1:8000; key from $KEY)
#
# GET /health and /ready, the Prometheus text of /metrics, and, with a key, an assistant
# created, read back and deleted through /v1. Needs curl and python3. Exits non-zero on the
# first failure. (tests/compose/test_compose.py tests the whole stack, runs included.)
set -euo pipefail
base=${1:-http://127.0.0.1:8000}
key=${2:-${KEY:-}}
field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

echo "health:  $(curl -sf "$base/health")"
echo "ready:   $(curl -sf "$base/ready")"
curl -sf "$base/metrics" | grep -q '^assistd_http_requests_total' \
  && echo "metrics: ok"
if [ -z "$key" ]; then
  echo "no API key given: skipped the /v1 check (docker-compose exec api assistd keys create)"
  exit 0
fi
auth=(-H "Authorization: Bearer $key" -H "Content-Type: application/json")
id=$(curl -sf "$base/v1/assistants" "${auth[@]}" \
  -d '{"model": "gpt-4o", "name": "smoke check"}' | field id)
name=$(curl -sf "$base/v1/assistants/$id" "${auth[@]}" | field name)
[ "$name" = "smoke check" ] || { echo "read back name '$name'" >&2; exit 1; }
curl -sf -X DELETE "$base/v1/assistants/$id" "${auth[@]}" | grep -q '"deleted":true'
echo "v1:      created, read and deleted assistant $id"
