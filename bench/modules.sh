#!/usr/bin/env bash
# Figures for the two Ansible binary modules, which are copied to every host
# on every run: the stripped size of each static module-profile binary and the time
# of one write (and one read). Goals: < 2 MiB and < 5 ms. A benchmark, not a
# test: it prints figures and flags misses, and exits 0 either way.
#
#   bench/modules.sh              build as `task build` does, then measure
#   bench/modules.sh --no-build   measure the binaries already built
#
# Timing uses hyperfine when present, else a plain loop.
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-gnu
bindir=target/$target/module
modules=(write_deploy_info deploy_info)
size_goal=$((2 * 1024 * 1024))
time_goal_ms=5

if [ "${1:-}" != "--no-build" ]; then
    echo "bench: building static release binaries" >&2
    RUSTFLAGS='-C target-feature=+crt-static' \
        cargo build --quiet --profile module --target "$target" --bin write_deploy_info --bin deploy_info
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-modules.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "== stripped size (goal < 2 MiB)"
for m in "${modules[@]}"; do
    [ -x "$bindir/$m" ] || { echo "bench: $bindir/$m is missing; build it first" >&2; exit 1; }
    cp "$bindir/$m" "$work/$m"
    strip "$work/$m" 2>/dev/null || true
    size=$(stat -c %s "$work/$m")
    verdict=ok
    [ "$size" -lt "$size_goal" ] || verdict=MISSED
    printf '%-20s %9d bytes  %6.2f MiB  %s\n' "$m" "$size" "$(echo "$size / 1048576" | bc -l)" "$verdict"
done

# One deploy of a realistic record: a fresh root each time for the first
# write (directories created, record and history written and fsynced), the
# same root for the idempotent write and for the read.
root="$work/opt"
digest="sha256:$(printf '%064d' 0 | tr 0 a)"
cat > "$work/write.json" <<JSON
{"org": "rednaw", "app": "hello-world", "workspace": "dev",
 "image": "registry.rednaw.nl/rednaw/hello-world", "tag": "eb53023",
 "digest": "$digest", "description": "add healthcheck + fix nginx proxy header",
 "built_at": "2026-01-25T01:01:33Z", "revision": "eb53023c8f4d9b1e2a7f6c5d4e3b2a1f0e9d8c7b",
 "source": "https://github.com/rednaw/hello-world", "deployed_by": "wander@casa",
 "root": "$root", "_ansible_check_mode": false, "_ansible_diff": true}
JSON
echo "{\"root\": \"$root\"}" > "$work/read.json"
sed "s/$digest/sha256:$(printf '%064d' 0 | tr 0 b)/" "$work/write.json" > "$work/other.json"
record="$root/rednaw/hello-world/deploy-info.yml"
write="$work/write_deploy_info $work/write.json"
write_other="$work/write_deploy_info $work/other.json"
read="$work/deploy_info $work/read.json"

echo "== run time"
if command -v hyperfine >/dev/null 2>&1; then
    hf() { hyperfine --shell=none --warmup 5 --style basic "$@"; }
    hf --runs 200 --export-json "$work/first.json" --prepare "rm -rf $root" \
        -n "write_deploy_info (first write)" "$write"
    # A redeploy: the record on disk names another digest each time.
    $write_other >/dev/null
    cp "$record" "$work/other-record.yml"
    hf --runs 200 --export-json "$work/redeploy.json" --prepare "cp $work/other-record.yml $record" \
        -n "write_deploy_info (redeploy)" "$write"
    hf --runs 300 --export-json "$work/rest.json" \
        -n "write_deploy_info (unchanged)" "$write" \
        -n "deploy_info (one record)" "$read"
    results=$(python3 -c 'import json,sys
for f in sys.argv[1:]:
    for r in json.load(open(f))["results"]:
        print("%s\t%f\t%f" % (r["command"], r["median"]*1000, r["mean"]*1000))' \
        "$work/first.json" "$work/redeploy.json" "$work/rest.json")
else
    echo "bench: hyperfine not found (scripts/setup installs it); timing with a loop," \
        "which adds the cost of forking \`date\` to every figure" >&2
    runs=200
    median_ms() {  # command, optional prepare
        local t0 t1
        for _ in $(seq "$runs"); do
            if [ -n "${2:-}" ]; then eval "$2"; fi
            t0=$(date +%s%N); $1 >/dev/null; t1=$(date +%s%N)
            echo $((t1 - t0))
        done | sort -n | awk '{a[NR]=$1; s+=$1} END {printf "%f\t%f\n", a[int((NR+1)/2)]/1e6, s/NR/1e6}'
    }
    $write_other >/dev/null
    cp "$record" "$work/other-record.yml"
    results=$(
        printf 'write_deploy_info (first write)\t%s\n' "$(median_ms "$write" "rm -rf $root")"
        printf 'write_deploy_info (redeploy)\t%s\n' "$(median_ms "$write" "cp $work/other-record.yml $record")"
        printf 'write_deploy_info (unchanged)\t%s\n' "$(median_ms "$write")"
        printf 'deploy_info (one record)\t%s\n' "$(median_ms "$read")")
fi
echo "== figures (goal < ${time_goal_ms} ms, median)"
while IFS=$'\t' read -r name median mean; do
    verdict=ok
    (( $(echo "$median < $time_goal_ms" | bc -l) )) || verdict=MISSED
    printf '%-34s %7.2f ms median  %7.2f ms mean  %s\n' "$name" "$median" "$mean" "$verdict"
done <<<"$results"
