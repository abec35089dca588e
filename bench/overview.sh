#!/usr/bin/env bash
# Benchmark of images_overview: seeds a repository with many tags in a
# private distribution registry on loopback, then times side by side
#
#   images_overview, cold cache and warm cache
#   `skopeo inspect` over the same tags, sequential and 16 in parallel
#   the same with LATENCY_MS added to every request by a delay proxy,
#     beside the lower bound requests × latency ÷ concurrency: once with
#     the proxy passing requests to the registry (which shares the 2 cores
#     with everything else), once with the proxy replaying the registry's
#     answers from memory, so the latency alone is measured
#   the registry's raw rate on one manifest URL (wrk), beside the rate the
#     overview achieves warm, and on one config blob: the cold floor
#   the loopback figures again with the registry's Go collector tuned
#     (GOGC=400)
#
# and prints figures and ratios against the goals of the overviews issue.
# Not a test: it always exits 0 once it ran, whatever the figures.
#
# Environment (all optional):
#   BENCH_TAGS        tags to seed                         default 1000
#   BENCH_LATENCY_MS  added per request by the proxy       default 20
#   BENCH_RUNS        runs per overview figure (median)    default 3
#   BENCH_SEED        `labels`: each image its own config with its CI
#                     labels, as CI builds them; `annotations`: one config
#                     for all, labels in manifest annotations (only the
#                     manifests differ)                     default labels
#   BENCH_SEQ_SAMPLE  tags the sequential skopeo loops run; the figure is
#                     scaled to BENCH_TAGS                 default: 200 (no
#                     latency), 100 (with latency)
#
# The machine is shared: every figure is taken close in time to the one it
# is compared with (wrk right before and after the overview runs), and the
# load average is printed with the results.
#
# Needs: docker-registry, skopeo, wrk (scripts/setup installs them), cargo.
set -euo pipefail
cd "$(dirname "$0")/.."

TAGS=${BENCH_TAGS:-1000}
LATENCY_MS=${BENCH_LATENCY_MS:-20}
RUNS=${BENCH_RUNS:-3}
SEQ_SAMPLE=${BENCH_SEQ_SAMPLE:-200}
((SEQ_SAMPLE > TAGS)) && SEQ_SAMPLE=$TAGS
SEQ_SAMPLE_LATENCY=${BENCH_SEQ_SAMPLE:-100}
((SEQ_SAMPLE_LATENCY > TAGS)) && SEQ_SAMPLE_LATENCY=$TAGS
SEED=${BENCH_SEED:-labels}
case "$SEED" in
    labels) seed_args=() ;;
    annotations) seed_args=(--shared-config) ;;
    *) echo "$0: error: BENCH_SEED is \`labels\` or \`annotations\`, not \`$SEED\`" >&2; exit 2 ;;
esac
CONCURRENCY=16
prog=bench/overview.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh

for tool in docker-registry skopeo wrk cargo python3; do
    command -v "$tool" >/dev/null || { echo "$prog: error: \`$tool\` not found; run scripts/setup" >&2; exit 1; }
done

now() { date +%s.%N; }
# elapsed START → seconds since START, 3 decimals.
elapsed() { python3 -c "import sys; print(f'{$(now) - $1:.3f}')"; }
median() { python3 -c 'import sys, statistics; print(f"{statistics.median(float(x) for x in sys.argv[1:]):.3f}")' "$@"; }

echo "$prog: building (release)" >&2
cargo build -q --release --bin images_overview --example seed_tags --example delay_proxy
bin=target/release
overview=$bin/images_overview

# The registry, access log off (it would cost the registry more than the
# requests themselves on 2 cores).
start_registry

echo "$prog: seeding $TAGS tags into $reg/bench/web" >&2
start=$(now)
$bin/examples/seed_tags "$reg/bench/web" "$TAGS" "${seed_args[@]}" >"$work/tags"
seed_s=$(elapsed "$start")
tag1=$(head -n1 "$work/tags")

# Proxies: one without delay (counts requests), one with LATENCY_MS.
count_port=$(free_port)
$bin/examples/delay_proxy "$count_port" "$reg" 0 &
pids+=($!)
slow_port=$(free_port)
$bin/examples/delay_proxy "$slow_port" "$reg" "$LATENCY_MS" &
pids+=($!)
replay_port=$(free_port)
$bin/examples/delay_proxy "$replay_port" "$reg" "$LATENCY_MS" replay &
pids+=($!)
wait_port "$count_port"
wait_port "$slow_port"
wait_port "$replay_port"
counted() { python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$1/_delay_proxy/count').read().decode().strip())"; }

# run_overview HOST CACHE_DIR → seconds
run_overview() {
    local s
    s=$(now)
    IMAGE_LIFECYCLE_CACHE_DIR=$2 $overview dev "$1/bench/web" --json --concurrency "$CONCURRENCY" >"$work/out.json"
    elapsed "$s"
}
check_output() {
    local n
    n=$(python3 -c "import json; print(len(json.load(open('$work/out.json'))['tags']))")
    [ "$n" = "$TAGS" ] || { echo "$prog: error: the overview listed $n tags, not $TAGS" >&2; exit 1; }
}
# overview_figures HOST → "cold warm" medians over RUNS
overview_figures() {
    local cold=() warm=() i
    for i in $(seq 1 "$RUNS"); do
        rm -rf "$work/cache"
        cold+=("$(run_overview "$1" "$work/cache")")
        check_output
    done
    for i in $(seq 1 "$RUNS"); do
        warm+=("$(run_overview "$1" "$work/cache")")
        check_output
    done
    echo "$(median "${cold[@]}") $(median "${warm[@]}")"
}
# skopeo_seq HOST SAMPLE → seconds for SAMPLE tags, one after another
skopeo_seq() {
    local s
    s=$(now)
    head -n "$2" "$work/tags" | while read -r t; do
        skopeo inspect --tls-verify=false "docker://$1/bench/web:$t" >/dev/null
    done
    elapsed "$s"
}
# skopeo_par HOST → seconds for all tags, 16 at a time
skopeo_par() {
    local s
    s=$(now)
    xargs -P"$CONCURRENCY" -I{} skopeo inspect --tls-verify=false "docker://$1/bench/web:{}" >/dev/null <"$work/tags"
    elapsed "$s"
}

# Request counts, through the counting proxy.
count_host=127.0.0.1:$count_port
rm -rf "$work/cache"
c0=$(counted "$count_port"); run_overview "$count_host" "$work/cache" >/dev/null; c1=$(counted "$count_port")
run_overview "$count_host" "$work/cache" >/dev/null; c2=$(counted "$count_port")
head -n 10 "$work/tags" | while read -r t; do skopeo inspect --tls-verify=false "docker://$count_host/bench/web:$t" >/dev/null; done
c3=$(counted "$count_port")
req_cold=$((c1 - c0))
req_warm=$((c2 - c1))
req_skopeo=$(calc "($c3 - $c2) / 10" 1)

# The registry's raw rate on one manifest URL. wrk cannot send HEAD (it
# waits for a body that never comes), so it GETs; distribution serves HEAD
# and GET of a manifest with the same handler, which reads the manifest
# either way.
accept='application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json'
cat >"$work/get.lua" <<EOF
wrk.method = "GET"
wrk.headers["Accept"] = "$accept"
EOF
# The first tag's config blob (fetched once here, so a wrong URL stops the
# script): a cold run GETs one config per image, and distribution serves
# blobs more slowly than manifests (it reads each blob through a 4 MiB
# buffer), so the cold floor takes both rates.
config_digest=$(python3 -c "
import json, urllib.request
req = urllib.request.Request('http://$reg/v2/bench/web/manifests/$tag1', headers={'Accept': '$accept'})
digest = json.load(urllib.request.urlopen(req))['config']['digest']
urllib.request.urlopen('http://$reg/v2/bench/web/blobs/' + digest).read()
print(digest)")
# The cold run's GETs besides the manifests by tag, as the proxy counted
# them: the configs (and the tag list).
other_gets=$((req_cold - TAGS))
# wrk_rate HOST manifest|blob → requests per second on the first tag's
# manifest (by tag) or its config blob, 4 seconds; fails on any answer
# other than 2xx (wrk would count it as a request served).
wrk_rate() {
    local url=http://$1/v2/bench/web/manifests/$tag1 out
    [ "$2" = blob ] && url=http://$1/v2/bench/web/blobs/$config_digest
    out=$(wrk -t2 -c"$CONCURRENCY" -d4s -s "$work/get.lua" "$url")
    if grep -q 'Non-2xx' <<<"$out"; then
        echo "$prog: error: $url answered errors to wrk:" >&2
        echo "$out" >&2
        exit 1
    fi
    awk '/Requests\/sec/ {print $2}' <<<"$out"
}
# cold_floor MANIFEST_RATE BLOB_RATE → seconds the cold run's requests take
# at the rates wrk reaches, one kind after the other: an estimate of what a
# client that cost nothing could do (wrk itself shares the cores)
cold_floor() { calc "$TAGS / $1 + $other_gets / $2" 3; }

echo "$prog: loopback: wrk, overview, wrk" >&2
raw1=$(wrk_rate "$reg" manifest)
rawb1=$(wrk_rate "$reg" blob)
read -r cold warm < <(overview_figures "$reg")
raw2=$(wrk_rate "$reg" manifest)
rawb2=$(wrk_rate "$reg" blob)
raw=$(calc "($raw1 + $raw2) / 2" 1)
rawb=$(calc "($rawb1 + $rawb2) / 2" 1)
floor_loopback=$(cold_floor "$raw" "$rawb")
# How busy the registry is during one cold and one warm run: on 2 cores a
# registry near 2 CPU seconds per second leaves nothing for any client.
rm -rf "$work/cache"
r0=$(reg_cpu); cold_once=$(run_overview "$reg" "$work/cache"); r1=$(reg_cpu)
check_output
warm_once=$(run_overview "$reg" "$work/cache"); r2=$(reg_cpu)
check_output
reg_cold_cpu=$(calc "$r1 - $r0" 2)
reg_warm_cpu=$(calc "$r2 - $r1" 2)
load_loopback=$(cut -d' ' -f1 /proc/loadavg)
echo "$prog: loopback: skopeo, parallel and sequential ($SEQ_SAMPLE tags)" >&2
par=$(skopeo_par "$reg")
seq_raw=$(skopeo_seq "$reg" "$SEQ_SAMPLE")
seq=$(calc "$seq_raw * $TAGS / $SEQ_SAMPLE" 3)

echo "$prog: ${LATENCY_MS} ms per request: overview" >&2
slow_host=127.0.0.1:$slow_port
read -r lcold lwarm < <(overview_figures "$slow_host")
echo "$prog: ${LATENCY_MS} ms per request: skopeo, sequential ($SEQ_SAMPLE_LATENCY tags) and parallel" >&2
lseq_raw=$(skopeo_seq "$slow_host" "$SEQ_SAMPLE_LATENCY")
lseq=$(calc "$lseq_raw * $TAGS / $SEQ_SAMPLE_LATENCY" 3)
lpar=$(skopeo_par "$slow_host")
echo "$prog: ${LATENCY_MS} ms per request, answers replayed from memory: overview" >&2
replay_host=127.0.0.1:$replay_port
# One cold and one warm run teach the proxy every answer (GETs, then HEADs).
rm -rf "$work/cache"
run_overview "$replay_host" "$work/cache" >/dev/null
run_overview "$replay_host" "$work/cache" >/dev/null
read -r rcold rwarm < <(overview_figures "$replay_host")

# The loopback figures again against a second registry on the same data
# whose Go collector runs less often (GOGC=400, a usual tuning for
# throughput): on 2 shared cores the registry's CPU is the cold run's
# limit, so this shows how the client follows a faster registry. Its own
# skopeo figure and wrk rates, taken around its overview runs.
echo "$prog: loopback, registry with GOGC=400: wrk, overview, skopeo parallel, wrk" >&2
start_registry GOGC=400
traw1=$(wrk_rate "$reg" manifest)
trawb1=$(wrk_rate "$reg" blob)
read -r tcold twarm < <(overview_figures "$reg")
tpar=$(skopeo_par "$reg")
traw2=$(wrk_rate "$reg" manifest)
trawb2=$(wrk_rate "$reg" blob)
traw=$(calc "($traw1 + $traw2) / 2" 1)
trawb=$(calc "($trawb1 + $trawb2) / 2" 1)
tfloor=$(cold_floor "$traw" "$trawb")

bound_cold=$(calc "$req_cold * $LATENCY_MS / 1000 / $CONCURRENCY" 3)
bound_warm=$(calc "$req_warm * $LATENCY_MS / 1000 / $CONCURRENCY" 3)
# What the registry allows at all: the same requests at its raw rate.
floor_cold=$(calc "max($bound_cold, $req_cold / $raw)" 3)
floor_warm=$(calc "max($bound_warm, $req_warm / $raw)" 3)

rate_warm=$(calc "$req_warm / $warm" 0)
rate_cold=$(calc "$req_cold / $cold" 0)

cat <<EOF

Overview benchmark: $TAGS tags (seed: $SEED), concurrency $CONCURRENCY, median of $RUNS runs
machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); registry: $(docker-registry --version 2>/dev/null | head -n1)
load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)
seeding took ${seed_s} s

requests per run (counted by a proxy)
  images_overview cold        $req_cold
  images_overview warm        $req_warm
  skopeo inspect, per tag     $req_skopeo

loopback                          seconds   vs skopeo parallel
  images_overview cold            $(printf '%8s' "$cold")   $(calc "$par / $cold" 1)x   (goal >= 8x: $(ok "$par / $cold >= 8"))
  images_overview warm            $(printf '%8s' "$warm")   $(calc "$par / $warm" 1)x   (goal >= 15x: $(ok "$par / $warm >= 15"))
  skopeo inspect, sequential      $(printf '%8s' "$seq")   (${SEQ_SAMPLE} tags timed, scaled)
  skopeo inspect, 16 in parallel  $(printf '%8s' "$par")
  cold floor: $TAGS manifests at $(calc "$raw" 0)/s + $other_gets other GETs at the blob rate $(calc "$rawb" 0)/s (wrk) = $floor_loopback s,
    so a client would need to outrun wrk to be more than $(calc "$par / $floor_loopback" 1)x faster than skopeo cold here; the overview takes $(calc "$cold / $floor_loopback" 2)x the floor
  registry CPU bound: the registry itself spent ${reg_cold_cpu} CPU s on one cold run; spread over all $(nproc) cores that is $(calc "$reg_cold_cpu / $(nproc)" 3) s,
    so no client asking for the same content can be more than $(calc "$par * $(nproc) / $reg_cold_cpu" 1)x faster than skopeo cold here

loopback, registry with GOGC=400 (same data)  seconds   vs skopeo parallel
  images_overview cold            $(printf '%8s' "$tcold")   $(calc "$tpar / $tcold" 1)x   (goal >= 8x: $(ok "$tpar / $tcold >= 8"))
  images_overview warm            $(printf '%8s' "$twarm")   $(calc "$tpar / $twarm" 1)x   (goal >= 15x: $(ok "$tpar / $twarm >= 15"))
  skopeo inspect, 16 in parallel  $(printf '%8s' "$tpar")
  cold floor: $(calc "$traw" 0) manifests/s, $(calc "$trawb" 0) configs/s = $tfloor s (a client would need to outrun wrk to pass $(calc "$tpar / $tfloor" 1)x); the overview takes $(calc "$tcold / $tfloor" 2)x the floor

${LATENCY_MS} ms per request                 seconds   lower bound   measured / bound
  images_overview cold            $(printf '%8s' "$lcold")   $(printf '%8s' "$bound_cold")      $(calc "$lcold / $bound_cold" 2)   (goal <= 1.5: $(ok "$lcold / $bound_cold <= 1.5"))
  images_overview warm            $(printf '%8s' "$lwarm")   $(printf '%8s' "$bound_warm")      $(calc "$lwarm / $bound_warm" 2)   (goal <= 1.5: $(ok "$lwarm / $bound_warm <= 1.5"))
  floor max(bound, requests / raw rate): cold $floor_cold s (measured $(calc "$lcold / $floor_cold" 2)x), warm $floor_warm s (measured $(calc "$lwarm / $floor_warm" 2)x)
  skopeo inspect, sequential      $(printf '%8s' "$lseq")   (${SEQ_SAMPLE_LATENCY} tags timed, scaled)
  skopeo inspect, 16 in parallel  $(printf '%8s' "$lpar")   overview warm is $(calc "$lpar / $lwarm" 1)x faster, cold $(calc "$lpar / $lcold" 1)x
  the same, answers replayed from memory by the proxy (the registry's CPU out of the way):
  images_overview cold            $(printf '%8s' "$rcold")   $(printf '%8s' "$bound_cold")      $(calc "$rcold / $bound_cold" 2)   (goal <= 1.5: $(ok "$rcold / $bound_cold <= 1.5"))
  images_overview warm            $(printf '%8s' "$rwarm")   $(printf '%8s' "$bound_warm")      $(calc "$rwarm / $bound_warm" 2)   (goal <= 1.5: $(ok "$rwarm / $bound_warm <= 1.5"))

registry ceiling (wrk -t2 -c$CONCURRENCY, GET of one manifest by tag: $raw1/s before, $raw2/s after the overview runs; load $load_loopback)
  raw rate                        $(calc "$raw" 0) requests/s
  images_overview warm            $rate_warm requests/s = $(calc "100 * $rate_warm / $raw" 0)% of raw   (goal >= 60%: $(ok "$rate_warm / $raw >= 0.6"))
  images_overview cold            $rate_cold requests/s = $(calc "100 * $rate_cold / $raw" 0)% of raw
  registry CPU during one run     cold ${reg_cold_cpu} s in ${cold_once} s ($(calc "$reg_cold_cpu / $cold_once" 2) cores busy), warm ${reg_warm_cpu} s in ${warm_once} s ($(calc "$reg_warm_cpu / $warm_once" 2) cores) of $(nproc)
EOF
