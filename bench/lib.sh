# Shared by the benchmark scripts (sourced, not run): a work directory
# removed on exit with every process started into `pids`, small helpers,
# and a private distribution registry on a free loopback port.
#
# The sourcing script sets `prog` (its name, for messages) first.

work=$(mktemp -d "/tmp/${prog##*/}.XXXXXX")
pids=()
bench_cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap bench_cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# calc EXPR DECIMALS → the Python expression's value, rounded
calc() { python3 -c "print(f'{$1:.$2f}')"; }
ok() { python3 -c "print('ok' if $1 else 'MISSED')"; }
wait_port() {
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "$prog: error: nothing listens on 127.0.0.1:$1" >&2
    exit 1
}

# start_registry [ENV=VALUE…] → a registry with deletes enabled and the
# access log off, data in $work/data (registries started one after another
# share it), the given environment added (e.g. GOGC=400); sets `reg`
# (HOST:PORT), `reg_pid` and `reg_config` (its configuration file).
start_registry() {
    local port
    port=$(free_port)
    reg=127.0.0.1:$port
    reg_config=$work/config-$port.yml
    cat >"$reg_config" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/data
  delete:
    enabled: true
http:
  addr: $reg
EOF
    env "$@" docker-registry serve "$reg_config" >"$work/registry-$port.log" 2>&1 &
    reg_pid=$!
    pids+=("$reg_pid")
    wait_port "$port"
}

# reg_cpu → CPU seconds the registry has used so far (user + system).
reg_cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$reg_pid/stat"; }
