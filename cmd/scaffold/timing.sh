#!/usr/bin/env bash
# timing.sh: how long `scaffold new` + `go test ./...` of the new service take,
# with a warm build cache (millrace and its dependencies compiled before, the
# service's own packages not: a new directory) and a cold one (an empty
# GOCACHE: the standard library and every dependency compiled too). Offline
# in both: the module cache only (GOPROXY=off). Goal: warm under 20 s.
#
#   cmd/scaffold/timing.sh          # warm, then cold
#   cmd/scaffold/timing.sh warm     # warm only
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export GOFLAGS=-mod=mod GOPROXY=off GOWORK=off

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(go version | cut -d' ' -f3)"
go build -o "$tmp/scaffold" ./cmd/scaffold

now() { date +%s.%N; }

# measure LABEL: scaffold new into a new directory, then go test ./... in it.
measure() {
  local label=$1 dir="$tmp/svc-$1" t0 t1 t2
  t0=$(now)
  "$tmp/scaffold" new timing --module example.com/timing --dir "$dir" >/dev/null
  t1=$(now)
  (cd "$dir" && go test -count=1 ./... >/dev/null)
  t2=$(now)
  awk -v l="$label" -v a="$t0" -v b="$t1" -v c="$t2" -v ld="$(cut -d' ' -f1 /proc/loadavg)" \
    'BEGIN { printf "%-5s scaffold new %5.1f s + go test ./... %6.1f s = %6.1f s   (load %s)\n", l, b-a, c-b, c-a, ld }'
}

mode=${1:-all}
measure prime >/dev/null # fills the cache with millrace's packages: not counted
measure warm
if [ "$mode" = all ] || [ "$mode" = cold ]; then
  GOCACHE="$tmp/gocache" measure cold
fi
