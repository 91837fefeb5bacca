#!/usr/bin/env bash
# Start a Docker engine for the tests and CI, idempotently.
# Installs docker.io and mmdebstrap from Debian's apt when missing, then starts dockerd with
# no bridge network at all (every container runs with --network none) and waits for it.
set -euo pipefail

if docker info >/dev/null 2>&1; then
    echo "start-dockerd: engine already running"
    if docker network ls --format '{{.Driver}}' | grep -qx bridge; then
        echo "start-dockerd: note: this engine has a bridge network; ricord-bench still runs every" \
             "container with --network none" >&2
    fi
    exit 0
fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v mmdebstrap >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq docker.io mmdebstrap >/dev/null
fi

log=${BENCH_DOCKERD_LOG:-/var/log/ricord-bench-dockerd.log}
nohup dockerd --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
    >"$log" 2>&1 &
echo $! >/run/ricord-bench-dockerd.pid

for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
        echo "start-dockerd: engine up (pid $(cat /run/ricord-bench-dockerd.pid), log $log)"
        exit 0
    fi
    sleep 1
done
echo "start-dockerd: dockerd did not answer within 60 s; its log ($log) ends with:" >&2
tail -n 20 "$log" >&2
exit 1
