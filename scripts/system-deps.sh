#!/usr/bin/env bash
# The system packages the test suite drives for real (Debian names). `make test` runs this first:
# as root it installs what is missing; otherwise it stops with the one command that would.
# Add a line here when a test starts using another real component.
set -euo pipefail
# command-on-PATH  debian-package
needs=(
    "haproxy haproxy"                           # tests/deploy: the balancer of the rolling update
    "java openjdk-17-jre-headless"              # jobs/: Spark
    "ps procps"                                 # tests/jobs/test_cluster.py: spark-daemon.sh runs ps
    "chromium chromium"                         # tests/service/test_swagger_page.py
    "pg_ctlcluster postgresql"                  # tests/records: a throwaway PostgreSQL cluster
    "promtool prometheus"                       # tests/deploy: rule unit tests; a real Prometheus
    "kubectl kubectl"                           # tests/deploy: kubectl kustomize of the overlays
    "git git"                                   # tests/test_readme.py: serves from a fresh clone
)
missing=()
for pair in "${needs[@]}"; do
    read -r cmd pkg <<<"$pair"
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
install="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
    echo "make test: missing system packages; install them as root: $install" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
