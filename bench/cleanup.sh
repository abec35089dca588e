#!/usr/bin/env bash
# Benchmark of registry_cleanup: seeds a private distribution registry on
# loopback with BENCH_REPOS repositories of BENCH_TAGS tags each (one
# distinct image per tag, made with examples/seed_cleanup.rs), then measures
#
#   the plan (a dry run over the whole catalog), cold and warm cache: wall
#     time, CPU time and peak memory (/usr/bin/time -v, "Maximum resident
#     set size"), beside the registry's own request rate (wrk, GET of one
#     manifest by tag) and the lower bound it sets: requests ÷ rate
#   the apply: wall time of `--apply`, and deletes per second of its delete
#     phase (the apply run minus a warm plan measured just before it; the
#     recheck of every repository's tags is part of that phase)
#   the registry's garbage collection afterwards, and the storage it freed
#
# and prints the figures against the aims of the cleanup issue (plan < 30 s
# and < 100 MiB). Not a test: it exits 0 once it ran, whatever the figures,
# but it fails if the cleanup deleted anything but the plan.
#
# Policy: keep_last 10, grace period 14 days; the seeded images are dated
# 2026-01-25 and one minute older per tag, and each repository has one
# deployed digest (tag index 50) in the deploy state, so BENCH_TAGS - 11
# digests per repository are deleted.
#
# Environment (all optional):
#   BENCH_REPOS         repositories                      default 100
#   BENCH_TAGS          tags per repository               default 100
#   BENCH_CONCURRENCY   --concurrency of registry_cleanup default 16
#
# Needs: docker-registry and wrk (scripts/setup installs them), cargo,
# python3, /usr/bin/time (GNU time).
set -euo pipefail
cd "$(dirname "$0")/.."

REPOS=${BENCH_REPOS:-100}
TAGS=${BENCH_TAGS:-100}
CONCURRENCY=${BENCH_CONCURRENCY:-16}
prog=bench/cleanup.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh

for tool in docker-registry wrk cargo python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || {
        echo "$prog: error: \`$tool\` not found; run scripts/setup (GNU time: apt-get install time)" >&2
        exit 1
    }
done
[ "$TAGS" -ge 51 ] || { echo "$prog: error: BENCH_TAGS must be at least 51 (tag 50 is the deployed one)" >&2; exit 2; }

# field NAME FILE → the value of GNU time's "NAME: value" line
field() { awk -F': ' -v k="$1" '$1 ~ k {print $2}' "$2" | tail -n1; }
# seconds FILE → GNU time's "Elapsed (wall clock) time" in seconds
seconds() {
    python3 -c '
import sys
s = 0.0
for p in sys.argv[1].split(":"):
    s = s * 60 + float(p)
print(f"{s:.2f}")' "$(field 'Elapsed \\(wall clock\\) time' "$1")"
}
mib() { calc "$(field 'Maximum resident set size' "$1") / 1024" 1; }
cpu() { calc "$(field 'User time' "$1") + $(field 'System time' "$1")" 1; }
json_get() { python3 -c "import json,sys; v=json.load(open('$1')); print(eval('v' + sys.argv[1]))" "$2"; }

echo "$prog: building (release)" >&2
cargo build -q --release --bin registry_cleanup --example seed_cleanup
bin=target/release

start_registry

echo "$prog: seeding $REPOS repositories × $TAGS tags into $reg" >&2
seed_start=$(date +%s.%N)
$bin/examples/seed_cleanup "$reg" "$REPOS" "$TAGS" --prefix bench/app >"$work/images"
seed_s=$(calc "$(date +%s.%N) - $seed_start" 1)

# Policy and deploy state: workspace `bench` runs tag index 50 of every
# repository (seed_cleanup prints `REPOSITORY INDEX TAG DIGEST`).
cat >"$work/policy.yml" <<EOF
workspaces: [bench]
defaults:
  keep_last: 10
  keep_younger_than: 14d
  keep_tags: ['^latest$']
  protect_history: 3
EOF
python3 -c '
import json, sys
reg = sys.argv[1]
rows = [l.split() for l in open(sys.argv[2]) if l.strip()]
records = [{"host": f"web{n % 4}", "app": repo.split("/")[-1], "workspace": "bench",
            "image": f"{reg}/{repo}", "tag": tag, "digest": digest,
            "deployed_at": "2026-02-01T00:00:00Z", "history": []}
           for n, (repo, index, tag, digest) in enumerate(r for r in rows if r[1] == "0050")]
print(json.dumps({"workspace": "bench", "collected_at": "2026-02-01T00:00:00Z",
                  "hosts": ["web0", "web1", "web2", "web3"], "records": records}))
' "$reg" "$work/images" >"$work/bench.json"

cleanup_run() { # OUT TIMEFILE ARGS… → runs registry_cleanup under GNU time
    local out=$1 tf=$2
    shift 2
    IMAGE_LIFECYCLE_CACHE_DIR=$work/cache /usr/bin/time -v -o "$tf" \
        $bin/registry_cleanup "$reg" --policy "$work/policy.yml" --protected "$work/bench.json" \
        --concurrency "$CONCURRENCY" --json "$@" >"$out" 2>"$work/stderr" ||
        { echo "$prog: error: registry_cleanup failed:" >&2; cat "$work/stderr" >&2; exit 1; }
}

echo "$prog: plan, cold cache" >&2
rm -rf "$work/cache"
r0=$(reg_cpu)
cleanup_run "$work/plan.json" "$work/time-cold"
r1=$(reg_cpu)
echo "$prog: plan, warm cache" >&2
cleanup_run "$work/plan.json" "$work/time-warm"
r2=$(reg_cpu)
reg_cold=$(calc "$r1 - $r0" 1)
reg_warm=$(calc "$r2 - $r1" 1)
digests=$(json_get "$work/plan.json" "['plan']['delete_count'] + v['plan']['keep_count']")
planned=$(json_get "$work/plan.json" "['plan']['delete_count']")
reclaim=$(json_get "$work/plan.json" "['plan']['reclaim_bytes']")
expected=$((REPOS * (TAGS - 11)))
[ "$planned" = "$expected" ] || { echo "$prog: error: planned $planned deletions, expected $expected" >&2; exit 1; }

echo "$prog: the registry's raw rate (wrk, 5 s)" >&2
read -r repo1 _ tag1 _ <"$work/images"
cat >"$work/get.lua" <<EOF
wrk.method = "GET"
wrk.headers["Accept"] = "application/vnd.oci.image.manifest.v1+json"
EOF
raw=$(wrk -t2 -c"$CONCURRENCY" -d5s -s "$work/get.lua" "http://$reg/v2/$repo1/manifests/$tag1" | awk '/Requests\/sec/ {print $2}')

echo "$prog: apply" >&2
storage_before=$(du -sb "$work/data" | cut -f1)
cleanup_run "$work/apply.json" "$work/time-apply" --apply
deleted=$(json_get "$work/apply.json" "['result']['deleted_count']")
failed=$(json_get "$work/apply.json" "['result']['failed_count']")
skipped=$(json_get "$work/apply.json" "['result']['skipped_count']")
[ "$deleted" = "$planned" ] && [ "$failed" = 0 ] && [ "$skipped" = 0 ] ||
    { echo "$prog: error: deleted $deleted of $planned ($failed failed, $skipped skipped)" >&2; exit 1; }
cleanup_run "$work/after.json" "$work/time-after"
left=$(json_get "$work/after.json" "['plan']['delete_count']")
kept=$(json_get "$work/after.json" "['plan']['keep_count']")
[ "$left" = 0 ] && [ "$kept" = $((REPOS * 11)) ] ||
    { echo "$prog: error: after apply: $left planned, $kept kept (expected 0 and $((REPOS * 11)))" >&2; exit 1; }

echo "$prog: garbage collection" >&2
gc_start=$(date +%s.%N)
docker-registry garbage-collect "$reg_config" >"$work/gc.log" 2>&1
gc_s=$(calc "$(date +%s.%N) - $gc_start" 1)
storage_after=$(du -sb "$work/data" | cut -f1)

cold_s=$(seconds "$work/time-cold"); cold_mib=$(mib "$work/time-cold"); cold_cpu=$(cpu "$work/time-cold")
warm_s=$(seconds "$work/time-warm"); warm_mib=$(mib "$work/time-warm"); warm_cpu=$(cpu "$work/time-warm")
apply_s=$(seconds "$work/time-apply"); apply_mib=$(mib "$work/time-apply"); apply_cpu=$(cpu "$work/time-apply")
delete_s=$(calc "max($apply_s - $warm_s, 0.01)" 2)
# Requests: cold = catalog + tag lists + one GET per tag + one config GET per
# image; warm = catalog + tag lists + one HEAD per tag.
req_cold=$((1 + REPOS + 2 * REPOS * TAGS))
req_warm=$((1 + REPOS + REPOS * TAGS))
row() { printf '  %-34s %8s %7s %8s MiB %9s %s\n' "$@"; }
cat <<EOF

Cleanup benchmark: $REPOS repositories × $TAGS tags = $((REPOS * TAGS)) tags, $digests digests, concurrency $CONCURRENCY
machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); registry: $(docker-registry --version 2>/dev/null | head -n1)
load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)
seeding took ${seed_s} s; the registry's raw rate: $(calc "$raw" 0) requests/s (wrk, GET of one manifest by tag, $CONCURRENCY connections)

EOF
printf '  %-34s %8s %7s %12s %9s %s\n' "" "seconds" "CPU s" "peak RSS" "requests" "  floor at the raw rate"
row "plan, cold cache" "$cold_s" "$cold_cpu" "$cold_mib" "$req_cold" \
    "  $(calc "$req_cold / $raw" 1) s   (aim < 30 s: $(ok "$cold_s < 30"), < 100 MiB: $(ok "$cold_mib < 100"))"
row "plan, warm cache" "$warm_s" "$warm_cpu" "$warm_mib" "$req_warm" \
    "  $(calc "$req_warm / $raw" 1) s   (aim < 30 s: $(ok "$warm_s < 30"), < 100 MiB: $(ok "$warm_mib < 100"))"
row "apply (plan, recheck, DELETEs)" "$apply_s" "$apply_cpu" "$apply_mib" "" ""
cat <<EOF
  registry CPU during the plan       cold $reg_cold s ($(calc "$reg_cold / $cold_s" 2) of $(nproc) cores busy; floor on this machine: $(calc "$reg_cold / $(nproc)" 1) s), warm $reg_warm s ($(calc "$reg_warm / $warm_s" 2) cores; floor $(calc "$reg_warm / $(nproc)" 1) s)
  delete phase (apply − warm plan)   $(printf '%8s' "$delete_s") s: $planned DELETEs, $(calc "$planned / $delete_s" 0) deletes/s (the recheck of $REPOS × $TAGS tags included)
  garbage collection                 $(printf '%8s' "$gc_s") s

planned to reclaim $(calc "$reclaim / 1048576" 2) MiB; storage $(calc "$storage_before / 1048576" 1) MiB → $(calc "$storage_after / 1048576" 1) MiB after the garbage collection
EOF
