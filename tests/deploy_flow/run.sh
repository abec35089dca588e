#!/usr/bin/env bash
# End-to-end tests of the deploy flow: real `task`, real `ansible-playbook`
# (from .venv/), a real docker-registry started by scripts/registry on a free
# loopback port with a temporary data directory, and images pushed with
# skopeo (scripts/push-sample). Workspaces are temporary inventories of two
# hosts on this machine (connection local), each with its own root.
#
#   tests/deploy_flow/run.sh            builds once (task build), then runs every case
#   SKIP_BUILD=1 tests/deploy_flow/run.sh   uses bin/ and library/ as they are
#   KEEP=1 ...                          keeps the temporary directory
#
# Prints one line per check and ends with `N passed, M failed`; exits
# non-zero if any check failed or a dependency is missing.
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

# --- dependencies: missing ones fail with what to install, never a skip ----
missing=()
for tool in .venv/bin/task .venv/bin/ansible-playbook .venv/bin/ansible-lint .venv/bin/yamllint .venv/bin/python; do
    [ -x "$tool" ] || missing+=("$tool (run scripts/setup)")
done
for tool in docker-registry skopeo cargo; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool (run scripts/setup, or apt-get install $tool; cargo: rustup)")
done
if ((${#missing[@]})); then
    printf 'deploy_flow: error: missing dependency: %s\n' "${missing[@]}" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

task=$root/.venv/bin/task
py=$root/.venv/bin/python
tmp=$(mktemp -d /tmp/deploy_flow.XXXXXX)
port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
closed_port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

export REGISTRY_ADDR=127.0.0.1:$port REGISTRY_DIR=$tmp/registry
export REGISTRY=$REGISTRY_ADDR INVENTORY_DIR=$tmp/inventories STATE_DIR=$tmp/state
export ORG=acme DEPLOYED_BY='tester@deploy-flow' WORKSPACES=test
export ANSIBLE_NOCOLOR=1 NO_COLOR=1
unset APP BIN_DIR
repo=acme/web
image=$REGISTRY/$repo

cleanup() {
    scripts/registry stop >/dev/null 2>&1 || true
    if [ -n "${KEEP:-}" ]; then echo "deploy_flow: kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

passed=0 failed=0 n=0
log=""
pass() { passed=$((passed + 1)); echo "ok      $*"; }
fail() { failed=$((failed + 1)); echo "FAILED  $*"; [ -n "$log" ] && [ -f "$log" ] && tail -n 25 "$log" | sed 's/^/    | /'; }
check() { # check DESCRIPTION COMMAND...: passes when COMMAND succeeds
    local what=$1; shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}
verdict() { # { CONDITION; }; verdict DESCRIPTION: passes when CONDITION succeeded
    if [ $? -eq 0 ]; then pass "$1"; else fail "$1"; fi
}
# run NAME CMD...: runs CMD with its output in $tmp/logs/NN-NAME.log; sets $rc and $log.
run() {
    local name=$1; shift
    n=$((n + 1))
    log=$(printf '%s/logs/%02d-%s.log' "$tmp" "$n" "$name")
    "$@" >"$log" 2>&1
    rc=$?
}
in_log() { grep -qF -- "$1" "$log"; }
# field FILE KEY: a top-level string value of a YAML file.
field() { "$py" -c 'import sys, yaml; d = yaml.safe_load(open(sys.argv[1])); v = d.get(sys.argv[2]); print("" if v is None else v)' "$1" "$2"; }
history_digests() { "$py" -c 'import sys, yaml; print(" ".join(r["digest"] for r in yaml.safe_load(open(sys.argv[1])) or []))' "$1"; }
app_dir() { echo "$tmp/hosts/$1/opt/acme/web"; }
info() { echo "$(app_dir "$1")/deploy-info.yml"; }
both_digest() { [ "$(field "$(info test-web1)" digest)" = "$1" ] && [ "$(field "$(info test-web2)" digest)" = "$1" ]; }
# snapshot, then unchanged: deploy-info.yml and deploy-history.yml of both hosts are byte-identical.
snapshot() { mkdir -p "$tmp/snap"; for h in test-web1 test-web2; do cp "$(app_dir $h)/deploy-info.yml" "$tmp/snap/$h.info"; cp "$(app_dir $h)/deploy-history.yml" "$tmp/snap/$h.history"; done; }
unchanged() { for h in test-web1 test-web2; do cmp -s "$tmp/snap/$h.info" "$(app_dir $h)/deploy-info.yml" && cmp -s "$tmp/snap/$h.history" "$(app_dir $h)/deploy-history.yml" || return 1; done; }
no_change_recap() { grep -Eq '^test-web1 +: .* changed=0 ' "$log" && grep -Eq '^test-web2 +: .* changed=0 ' "$log"; }
override() { printf -- '---\n%s\n' "$1" >"$tmp/inventories/test/group_vars/test/override.yml"; }
no_override() { rm -f "$tmp/inventories/test/group_vars/test/override.yml"; }
mkdir -p "$tmp/logs"

# --- the test workspace: two hosts on this machine ------------------------
mkdir -p "$tmp/inventories/test/group_vars/test"
cat >"$tmp/inventories/test/hosts.yml" <<'EOF'
---
test:
  hosts:
    test-web1:
    test-web2:
EOF
cat >"$tmp/inventories/test/group_vars/test/main.yml" <<EOF
---
ansible_connection: local
ansible_python_interpreter: "{{ ansible_playbook_python }}"
deploy_app_root: "$tmp/hosts/{{ inventory_hostname }}/opt"
deploy_app_runtime: command
deploy_app_command: [sh, -c, 'printf "%s\n" "\$IMAGE" > running-image; echo "\$TAG \$DIGEST" >> runs.log']
deploy_app_healthcheck_command: [sh, -c, 'grep -qxF "\$IMAGE" running-image']
deploy_app_healthcheck_retries: 2
deploy_app_healthcheck_delay: 0
EOF

# --- build once, start the registry, push three versions --------------------
if [ "${SKIP_BUILD:-}" != 1 ]; then
    echo "deploy_flow: task build (once)" >&2
    run build "$task" build
    if [ "$rc" -ne 0 ]; then fail "task build"; echo "$passed passed, $failed failed"; exit 1; fi
fi
export SKIP_BUILD=1

run registry-start scripts/registry start
check "scripts/registry starts a registry on $REGISTRY_ADDR" [ "$rc" -eq 0 ]
run registry-reuse scripts/registry start
check "scripts/registry start reuses the running registry" in_log "reusing the registry"

desc1='first "quoted" deploy: $HOME `id` ünïcode & spaces'
declare -a tags digests
i=0
for d in "$desc1" "second version" "third, it's the newest"; do
    i=$((i + 1))
    revision=$(printf 'web %s' "$i" | sha1sum | cut -c1-40)
    tags[i]=${revision:0:7}
    digests[i]=$(scripts/push-sample "$image:${tags[i]}" \
        --label "org.opencontainers.image.revision=$revision" \
        --label "org.opencontainers.image.description=$d" \
        --label "org.opencontainers.image.created=2026-01-2${i}T01:00:00Z" \
        --label "org.opencontainers.image.source=https://git.example.com/acme/web") || true
done
{ [ -n "${digests[1]}" ] && [ -n "${digests[3]}" ]; }; verdict "three sample versions pushed"
again=$(scripts/push-sample "$image:${tags[1]}" \
    --label "org.opencontainers.image.revision=$(printf 'web 1' | sha1sum | cut -c1-40)" \
    --label "org.opencontainers.image.description=$desc1" \
    --label "org.opencontainers.image.created=2026-01-21T01:00:00Z" \
    --label "org.opencontainers.image.source=https://git.example.com/acme/web")
check "pushing the same sample again gives the same digest" [ "$again" = "${digests[1]}" ]
T1=${tags[1]} T2=${tags[2]} T3=${tags[3]} D1=${digests[1]} D2=${digests[2]} D3=${digests[3]}

# --- lint ----------------------------------------------------------------
run yamllint .venv/bin/yamllint --strict .yamllint Taskfile.yml roles playbooks inventories
check "yamllint --strict passes on roles, playbooks, inventories and Taskfile.yml" [ "$rc" -eq 0 ]
run ansible-lint .venv/bin/ansible-lint --profile production roles playbooks inventories
check "ansible-lint --profile production passes on roles, playbooks and inventories" [ "$rc" -eq 0 ]

# --- usage and dependency errors ---------------------------------------------
run usage "$task" deploy -- test
{ [ "$rc" -ne 0 ] && in_log "usage: task deploy -- WS REPO"; }; verdict "task deploy without a target fails with its usage"
run no-ws "$task" deploy -- nowhere "$repo" "$T1"
{ [ "$rc" -ne 0 ] && in_log 'no workspace "nowhere"'; }; verdict "task deploy to an unknown workspace names the missing inventory"
run no-venv env VENV=/nonexistent "$task" deploy:apply -- test
{ [ "$rc" -ne 0 ] && in_log "run scripts/setup"; }; verdict "a missing ansible-playbook fails saying to run scripts/setup"

# --- deploy by tag, idempotent redeploy --------------------------------------
run deploy-tag "$task" deploy -- test "$repo" "$T1"
check "deploy by tag succeeds" [ "$rc" -eq 0 ]
check "deploy by tag records the digest on both hosts" both_digest "$D1"
check "deploy by tag records the tag" [ "$(field "$(info test-web1)" tag)" = "$T1" ]
check "a description with quotes, \$, backticks and unicode arrives intact" [ "$(field "$(info test-web2)" description)" = "$desc1" ]
{ [ "$(field "$(info test-web1)" workspace)" = test ] && [ "$(field "$(info test-web1)" image)" = "$image" ] && [ "$(field "$(info test-web1)" deployed_by)" = "$DEPLOYED_BY" ] && [ "$(field "$(info test-web1)" revision)" = "$(printf 'web 1' | sha1sum | cut -c1-40)" ]; }; verdict "deploy-info records workspace, image, deployed_by and revision"
check "the compose environment has IMAGE=<image>@<digest>" grep -qxF "IMAGE=$image@$D1" "$(app_dir test-web1)/.env"
check "the runtime ran with IMAGE in its environment" grep -qxF "$image@$D1" "$(app_dir test-web2)/running-image"
check "the facts file is resolve_digest's JSON in STATE_DIR/WS/facts/REPO.json" "$py" -c 'import json,sys; f=json.load(open(sys.argv[1])); assert f["digest"]==sys.argv[2] and f["workspace"]=="test", f' "$tmp/state/test/facts/$repo.json" "$D1"

snapshot
runs_before=$(wc -l <"$(app_dir test-web1)/runs.log")
run redeploy "$task" deploy -- test "$repo" "$T1"
check "redeploy of the same digest succeeds" [ "$rc" -eq 0 ]
check "redeploy of the same digest reports no change (changed=0 on both hosts)" no_change_recap
check "redeploy leaves deploy-info.yml and deploy-history.yml byte-identical" unchanged
check "redeploy does not run the runtime again" [ "$(wc -l <"$(app_dir test-web1)/runs.log")" -eq "$runs_before" ]

# --- deploy by digest, by tag@digest, a mismatching tag@digest ----------------
run deploy-digest "$task" deploy -- test "$repo" "$D2"
{ [ "$rc" -eq 0 ] && both_digest "$D2"; }; verdict "deploy by digest succeeds and records it"
check "deploy by digest records the tag that points to it" [ "$(field "$(info test-web1)" tag)" = "$T2" ]
run deploy-both "$task" deploy -- test "$repo" "$T3@$D3"
{ [ "$rc" -eq 0 ] && both_digest "$D3" && [ "$(field "$(info test-web2)" tag)" = "$T3" ]; }; verdict "deploy by tag@digest succeeds and records it"
snapshot
run deploy-mismatch "$task" deploy -- test "$repo" "$T3@$D1"
{ [ "$rc" -ne 0 ] && ! in_log "PLAY RECAP"; }; verdict "deploy of a tag@digest that disagree fails before the playbook"
check "a failed resolve leaves deploy-info unchanged" unchanged
run deploy-missing "$task" deploy -- test "$repo" nosuchtag
{ [ "$rc" -ne 0 ] && unchanged; }; verdict "deploy of a tag that does not exist fails and changes nothing"

# --- check mode passes through to ansible-playbook ----------------------------
run check-mode "$task" deploy -- test "$repo" "$T1" --check
{ [ "$rc" -eq 0 ] && unchanged; }; verdict "deploy with --check succeeds and writes nothing"

# --- rollback ------------------------------------------------------------------
run rollback-tag "$task" rollback -- test "$repo" "$T1"
{ [ "$rc" -eq 0 ] && both_digest "$D1"; }; verdict "rollback to a tag deploys it"
run rollback-digest "$task" rollback -- test "$repo" "$D3"
{ [ "$rc" -eq 0 ] && both_digest "$D3" && [ "$(field "$(info test-web1)" tag)" = "$T3" ]; }; verdict "rollback to a digest deploys it"
# History now: D1 D2 D3 D1 D3 -> the previous distinct digest is D1.
run rollback-previous "$task" rollback -- test "$repo"
{ [ "$rc" -eq 0 ] && both_digest "$D1"; }; verdict "rollback without a target deploys the previous distinct digest"
check "rollback without a target collected the deploy state first" [ -f "$tmp/state/test/deploy-state.json" ]
run rollback-again "$task" rollback -- test "$repo"
{ [ "$rc" -eq 0 ] && both_digest "$D3"; }; verdict "a second rollback without a target goes back to the digest before that"
check "history keeps every successful deploy, oldest first" [ "$(history_digests "$(app_dir test-web1)/deploy-history.yml")" = "$D1 $D2 $D3 $D1 $D3 $D1 $D3" ]

# --- failures leave deploy-info untouched ---------------------------------------
snapshot
env_before=$(cat "$(app_dir test-web1)/.env")
override "deploy_app_command: [sh, -c, 'echo runtime-exploded >&2; exit 3']"
run fail-runtime "$task" deploy -- test "$repo" "$T2"
{ [ "$rc" -ne 0 ] && in_log "runtime-exploded" && in_log "are unchanged"; }; verdict "a failing runtime fails the deploy with its reason"
check "a failing runtime leaves deploy-info.yml and its history byte-identical" unchanged
check "a runtime that fails going back too says the host may run neither" in_log "failed too"
check "a failed revert leaves IMAGE on the attempted digest, so that deploying again runs the runtime" \
    grep -qxF "IMAGE=$image@$D2" "$(app_dir test-web1)/.env"

web2_runs=$(wc -l <"$(app_dir test-web2)/runs.log")
override "deploy_app_healthcheck_command: [sh, -c, 'echo not-healthy >&2; exit 1']"
run fail-health-cmd "$task" deploy -- test "$repo" "$T2"
{ [ "$rc" -ne 0 ] && in_log "not-healthy"; }; verdict "a failing health check command fails the deploy"
check "a failing health check command leaves deploy-info byte-identical" unchanged
{ in_log "went back to $image@$D3, which deploy-info.yml records" \
    && grep -qxF "IMAGE=$image@$D3" "$(app_dir test-web1)/.env" \
    && grep -qxF "$image@$D3" "$(app_dir test-web1)/running-image"; }
verdict "a failed deploy goes back to the recorded digest (.env and the runtime)"
check "the failure says the recorded digest's health check failed too" in_log "but its health check failed too"
check "hosts are deployed one at a time: the failure on the first leaves the second untouched" \
    [ "$(wc -l <"$(app_dir test-web2)/runs.log")" -eq "$web2_runs" ]

override "deploy_app_healthcheck_command: [sh, -c, 'test \"\$DIGEST\" != $D2']"
run fail-health-new-only "$task" deploy -- test "$repo" "$T2"
{ [ "$rc" -ne 0 ] && in_log "went back to $image@$D3, which deploy-info.yml records, and it is healthy;" \
    && ! in_log "health check failed too" && grep -qxF "$image@$D3" "$(app_dir test-web1)/running-image"; }
verdict "going back runs the health check of the recorded digest, and says nothing more when it passes"

override "deploy_app_healthcheck_url: http://127.0.0.1:$closed_port/healthz"
run fail-health-url "$task" deploy -- test "$repo" "$T2"
{ [ "$rc" -ne 0 ] && in_log "Wait until the health check URL answers"; }; verdict "a health check URL that never answers fails the deploy"
check "a failing health check URL leaves deploy-info byte-identical" unchanged

no_override
run restore "$task" deploy -- test "$repo" "$T3"
check "after the failed deploys the hosts run the recorded digest again (no change)" no_change_recap

override "deploy_app_healthcheck_command: [sh, -c, 'exit 1']
deploy_app_revert_on_failure: false"
run fail-no-revert "$task" deploy -- test "$repo" "$T2"
{ [ "$rc" -ne 0 ] && in_log "did not go back (deploy_app_revert_on_failure is false)" && unchanged \
    && grep -qxF "IMAGE=$image@$D2" "$(app_dir test-web1)/.env"; }
verdict "with deploy_app_revert_on_failure false a failed deploy says so and leaves the attempted IMAGE"
no_override
run restore-again "$task" deploy -- test "$repo" "$T3"
check "a deploy of the recorded digest puts it back in place" grep -qxF "$image@$D3" "$(app_dir test-web1)/running-image"

# Two hosts in one batch, the first failing: it goes back, the other finishes and records.
mkdir -p "$tmp/inventories/test/host_vars"
printf -- "---\ndeploy_app_healthcheck_command: [sh, -c, 'exit 1']\n" >"$tmp/inventories/test/host_vars/test-web1.yml"
run fail-one-of-batch "$task" deploy -- test "$repo" "$T2" -e deploy_serial=2
{ [ "$rc" -ne 0 ] && [ "$(field "$(info test-web1)" digest)" = "$D3" ] && grep -qxF "$image@$D3" "$(app_dir test-web1)/running-image" \
    && [ "$(field "$(info test-web2)" digest)" = "$D2" ] && grep -qxF "$image@$D2" "$(app_dir test-web2)/running-image"; }
verdict "in a batch of two, the failed host goes back and the other records what it runs"
rm -f "$tmp/inventories/test/host_vars/test-web1.yml"
run restore-batch "$task" deploy -- test "$repo" "$T3"
check "both hosts run the same digest again" both_digest "$D3"
snapshot
env_before=$(cat "$(app_dir test-web1)/.env")
override "deploy_app_module_arch: aarch64"
run arch "$task" deploy -- test "$repo" "$T2"
{ [ "$rc" -ne 0 ] && in_log "architecture mismatch" && in_log "built for aarch64"; }; verdict "an architecture mismatch fails with a clear message"
{ unchanged && [ "$(cat "$(app_dir test-web1)/.env")" = "$env_before" ]; }; verdict "an architecture mismatch changes nothing on the host"
no_override

# --- the compose environment keeps its other lines, private --------------------
printf 'DB_PASSWORD=hunter2-SECRET\n' >>"$(app_dir test-web1)/.env"
run diff-env "$task" deploy -- test "$repo" "$T1" --diff
{ [ "$rc" -eq 0 ] && ! in_log "hunter2-SECRET" && grep -qxF "DB_PASSWORD=hunter2-SECRET" "$(app_dir test-web1)/.env"; }
verdict "a deploy with --diff keeps the other lines of .env and never shows them"
check "the compose environment file is created private (0600)" [ "$(stat -c %a "$(app_dir test-web1)/.env")" = 600 ]
chmod 0640 "$(app_dir test-web1)/.env"
run env-mode "$task" deploy -- test "$repo" "$T1"
{ [ "$rc" -eq 0 ] && no_change_recap && [ "$(stat -c %a "$(app_dir test-web1)/.env")" = 640 ]; }
verdict "an existing compose environment file keeps its mode (and a redeploy changes nothing)"

# --- the deploy playbook makes no registry request ------------------------------
run resolve "$task" resolve -- test "$repo" "$T2"
{ [ "$rc" -eq 0 ] && grep -qF "$D2" "$tmp/state/test/facts.json"; }; verdict "task resolve writes the facts"
run registry-stop scripts/registry stop
run registry-down scripts/registry status
check "the registry is stopped" [ "$rc" -eq 3 ]
run apply-offline "$task" deploy:apply -- test
{ [ "$rc" -eq 0 ] && both_digest "$D2"; }; verdict "the deploy playbook succeeds with the registry stopped"
run registry-restart scripts/registry start
check "the registry starts again on the same data" [ "$rc" -eq 0 ]

# --- collect: the deploy state file -------------------------------------------------
run collect "$task" collect -- test
check "task collect succeeds" [ "$rc" -eq 0 ]
check "the deploy state file has both hosts, their records with host, path and history" "$py" - "$tmp/state/test/deploy-state.json" "$D2" "$image" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
assert s["workspace"] == "test", s["workspace"]
assert sorted(s["hosts"]) == ["test-web1", "test-web2"], s["hosts"]
assert s["collected_at"].endswith("Z"), s["collected_at"]
recs = s["records"]
assert sorted(r["host"] for r in recs) == ["test-web1", "test-web2"], recs
for r in recs:
    assert r["digest"] == sys.argv[2] and r["image"] == sys.argv[3], r
    assert r["path"].endswith("/acme/web/deploy-info.yml"), r["path"]
    assert len(r["history"]) >= 2, r["history"]
EOF

cp "$tmp/state/test/deploy-state.json" "$tmp/state-before-limit.json"
run collect-limit env ANSIBLE_CONFIG="$root/ansible.cfg" .venv/bin/ansible-playbook -i "$tmp/inventories/test" \
    playbooks/collect_deploy_info.yml --limit test-web1 -e "{\"deploy_state_file\": \"$tmp/state/test/deploy-state.json\"}"
{ [ "$rc" -ne 0 ] && in_log "were left out" && cmp -s "$tmp/state-before-limit.json" "$tmp/state/test/deploy-state.json"; }
verdict "collect with --limit refuses to write a partial deploy state file"

run overview "$task" images:overview -- test "$repo"
{ [ "$rc" -eq 0 ] && grep -Eq "^→ +$T2 " "$log"; }; verdict "task images:overview marks the deployed tag with →"

# A workspace with one host that cannot be reached: nothing is written.
mkdir -p "$tmp/inventories/broken/group_vars"
cat >"$tmp/inventories/broken/hosts.yml" <<EOF
---
broken:
  hosts:
    broken-ok:
      ansible_connection: local
      ansible_python_interpreter: "{{ ansible_playbook_python }}"
      deploy_app_root: "$tmp/hosts/test-web1/opt"
    broken-down:
      ansible_connection: ssh
      ansible_host: 127.0.0.1
      ansible_port: $closed_port
      ansible_ssh_common_args: -o ConnectTimeout=3 -o StrictHostKeyChecking=no -o BatchMode=yes
EOF
mkdir -p "$tmp/state/broken"
echo sentinel >"$tmp/state/broken/deploy-state.json"
run collect-unreachable "$task" collect -- broken
check "collect with an unreachable host fails" [ "$rc" -ne 0 ]
check "collect with an unreachable host leaves the previous state file as it was" [ "$(cat "$tmp/state/broken/deploy-state.json")" = sentinel ]

# A deploy-info file that does not parse: strict collection fails, nothing is written.
mkdir -p "$tmp/hosts/corrupt/opt/acme/web"
printf 'app: [unclosed\n' >"$tmp/hosts/corrupt/opt/acme/web/deploy-info.yml"
mkdir -p "$tmp/inventories/corrupt"
cat >"$tmp/inventories/corrupt/hosts.yml" <<EOF
---
corrupt:
  hosts:
    corrupt-web1:
      ansible_connection: local
      ansible_python_interpreter: "{{ ansible_playbook_python }}"
      deploy_app_root: "$tmp/hosts/corrupt/opt"
EOF
run collect-corrupt "$task" collect -- corrupt
{ [ "$rc" -ne 0 ] && in_log "corrupt/opt/acme/web/deploy-info.yml"; }; verdict "collect with an unreadable deploy-info fails naming the file"
check "collect with an unreadable deploy-info writes no state file" [ ! -e "$tmp/state/corrupt/deploy-state.json" ]

# task cleanup: the dry run through the cleanup playbook, and fail-closed.
printf -- '---\nworkspaces: [test]\ndefaults: {keep_last: 1, keep_younger_than: 0d}\n' >"$tmp/policy-test.yml"
printf -- '---\nworkspaces: [test, broken]\ndefaults: {keep_last: 1}\n' >"$tmp/policy-broken.yml"
rm -f "$tmp/state/test/deploy-state.json"
run cleanup-dry-run env WORKSPACES=test CLEANUP_POLICY="$tmp/policy-test.yml" "$task" cleanup
{ [ "$rc" -eq 0 ] && [ -f "$tmp/state/test/deploy-state.json" ]; }; verdict "task cleanup gathers the deploy state and runs the dry run"
run tags-after-dry-run skopeo list-tags --tls-verify=false "docker://$image"
{ grep -q "$T1" "$log" && grep -q "$T2" "$log" && grep -q "$T3" "$log"; }; verdict "the cleanup dry run deletes nothing"
run cleanup-save-plan env WORKSPACES=test CLEANUP_POLICY="$tmp/policy-test.yml" CLEANUP_PLAN="$tmp/reviewed.json" "$task" cleanup
{ [ "$rc" -eq 0 ] && grep -q '"applied": false' "$tmp/reviewed.json" && grep -q "$T1" "$tmp/reviewed.json"; }; verdict "task cleanup CLEANUP_PLAN=FILE saves the dry run's plan there for review"
sed 's/"registry": "[^"]*"/"registry": "registry.example.com"/' "$tmp/reviewed.json" >"$tmp/reviewed-other.json"
run cleanup-other-plan env WORKSPACES=test CLEANUP_POLICY="$tmp/policy-test.yml" "$task" cleanup CLEANUP_PLAN="$tmp/reviewed-other.json" -- --apply
{ [ "$rc" -ne 0 ] && in_log 'is of registry `registry.example.com`' && in_log "nothing was deleted"; }; verdict "task cleanup CLEANUP_PLAN=FILE -- --apply reads the reviewed plan (one of another registry is refused)"
run cleanup-unreachable env WORKSPACES="test broken" CLEANUP_POLICY="$tmp/policy-broken.yml" "$task" cleanup -- --apply
{ [ "$rc" -ne 0 ] && in_log "broken-down"; }; verdict "task cleanup -- --apply with an unreachable host aborts naming it"
run tags-after-abort skopeo list-tags --tls-verify=false "docker://$image"
{ grep -q "$T1" "$log" && grep -q "$T2" "$log" && grep -q "$T3" "$log"; }; verdict "an aborted cleanup deletes nothing"
run cleanup-gc-no-host env WORKSPACES=test CLEANUP_POLICY="$tmp/policy-test.yml" "$task" cleanup -- --apply --gc
{ [ "$rc" -ne 0 ] && in_log "cleanup_garbage_collect needs cleanup_registry_host"; }; verdict "task cleanup -- --apply --gc without a registry host refuses before anything"
run tags-after-gc-refusal skopeo list-tags --tls-verify=false "docker://$image"
{ grep -q "$T1" "$log" && grep -q "$T2" "$log" && grep -q "$T3" "$log"; }; verdict "the refused --gc run deletes nothing"

# task untag: collects the deploy state first, so the last tag of what runs stays.
running_tag=$(field "$(info test-web1)" tag)
running_digest=$(field "$(info test-web1)" digest)
# Options first and a `--` of the user's: the deploy state still counts.
run untag-running env WORKSPACES=test "$task" untag -- --apply -- "$repo:$running_tag"
{ [ "$rc" -ne 0 ] && in_log "refusing to untag \`$image:$running_tag\`: it is the last tag of \`$running_digest\`, which is " && in_log "deployed on test/test-web1 (web)"; }; verdict "task untag -- --apply -- REPO:TAG refuses to remove the last tag of the digest the workspace runs"
run untag-extra-tag skopeo copy --src-tls-verify=false --dest-tls-verify=false "docker://$image:$T3" "docker://$image:extra-name"
run untag-extra env WORKSPACES=test "$task" untag -- "$repo:extra-name" --timeout 30 --apply
run tags-after-untag skopeo list-tags --tls-verify=false "docker://$image"
{ ! grep -q extra-name "$log" && grep -q "$running_tag" "$log" && grep -q "$T3" "$log"; }; verdict "task untag -- REPO:TAG --timeout 30 --apply removes another tag, and only it"

# --- the compose runtime, with a stand-in for `docker compose` ------------------------
cat >"$tmp/fake-docker" <<'EOF'
#!/bin/sh
# Stand-in for `docker compose`: records its argv and the IMAGE it was given,
# says what compose says: Started the first time for an image, Running after.
if [ "$2" = version ]; then echo "Docker Compose version v2.29.0 (stand-in)"; exit 0; fi
printf '%s\n' "$*" >>compose-calls.log
if grep -q broken compose.yml; then echo "service web: broken configuration" >&2; exit 1; fi
image=$(sed -n 's/^IMAGE=//p' .env)
if [ "$(cat compose-image 2>/dev/null)" = "$image" ]; then
    echo " Container web-1  Running" >&2
else
    printf '%s\n' "$image" >compose-image
    echo " Container web-1  Recreated" >&2
    echo " Container web-1  Started" >&2
fi
EOF
chmod +x "$tmp/fake-docker"
printf 'services:\n  web:\n    image: ${IMAGE}\n' >"$tmp/compose.yml"
override "deploy_app_runtime: compose
deploy_app_compose_command: ['$tmp/fake-docker', compose]
deploy_app_compose_src: $tmp/compose.yml
deploy_app_healthcheck_command: []"
run compose "$task" deploy -- test "$repo" "$T1"
{ [ "$rc" -eq 0 ] && both_digest "$D1"; }; verdict "the compose runtime deploys and records"
{ grep -A3 'Start the app with docker compose' "$log" | grep -q '^changed: \[test-web1\]'; }
verdict "a compose run that starts containers reports changed"
check "the compose runtime runs 'compose --file compose.yml --env-file .env up --detach --wait'" grep -qF "compose --file compose.yml --env-file $(app_dir test-web1)/.env up --detach --wait --wait-timeout 120 --remove-orphans" "$(app_dir test-web1)/compose-calls.log"
check "the compose file is copied into the app directory" cmp -s "$tmp/compose.yml" "$(app_dir test-web2)/compose.yml"
run compose-again "$task" deploy -- test "$repo" "$T1"
{ [ "$rc" -eq 0 ] && no_change_recap; }; verdict "a compose redeploy of the same digest reports no change"
backups() { ls "$(app_dir test-web1)" "$(app_dir test-web2)" | grep -c '^compose\.yml\..*~$'; }

# A compose file that does not use ${IMAGE}: the record would not say what runs.
printf 'services:\n  web:\n    image: example/web:latest\n' >"$tmp/compose-no-image.yml"
snapshot
env_before=$(cat "$(app_dir test-web1)/.env")
override "deploy_app_runtime: compose
deploy_app_compose_command: ['$tmp/fake-docker', compose]
deploy_app_compose_src: $tmp/compose-no-image.yml
deploy_app_healthcheck_command: []"
run compose-no-image "$task" deploy -- test "$repo" "$T2"
{ [ "$rc" -ne 0 ] && in_log "compose-no-image.yml (deploy_app_compose_src) does not use \${IMAGE}" && unchanged \
    && [ "$(cat "$(app_dir test-web1)/.env")" = "$env_before" ] && cmp -s "$tmp/compose.yml" "$(app_dir test-web1)/compose.yml"; }
verdict "a compose file to copy that does not use \${IMAGE} is refused before the host is touched"
cp "$tmp/compose-no-image.yml" "$(app_dir test-web1)/compose.yml"
override "deploy_app_runtime: compose
deploy_app_compose_command: ['$tmp/fake-docker', compose]
deploy_app_healthcheck_command: []"
run compose-no-image-host "$task" deploy -- test "$repo" "$T2"
{ [ "$rc" -ne 0 ] && in_log "$(app_dir test-web1)/compose.yml does not use \${IMAGE}" && unchanged; }
verdict "a compose file on the host that does not use \${IMAGE} is refused before the host is touched"
cp "$tmp/compose.yml" "$(app_dir test-web1)/compose.yml"
override "deploy_app_runtime: compose
deploy_app_compose_command: ['$tmp/fake-docker', compose]
deploy_app_compose_src: $tmp/compose-no-image.yml
deploy_app_compose_require_image: false
deploy_app_healthcheck_command: []"
run compose-no-image-opt-out "$task" deploy -- test "$repo" "$T2"
{ [ "$rc" -eq 0 ] && both_digest "$D2" && cmp -s "$tmp/compose-no-image.yml" "$(app_dir test-web1)/compose.yml" \
    && [ "$(backups)" -eq 0 ]; }
verdict "with deploy_app_compose_require_image false a compose file without \${IMAGE} deploys"

# A new compose file: its predecessor is kept until the deploy succeeded.
printf '# second version\nservices:\n  web:\n    image: ${IMAGE:?IMAGE is set by the deploy}\n' >"$tmp/compose-2.yml"
override "deploy_app_runtime: compose
deploy_app_compose_command: ['$tmp/fake-docker', compose]
deploy_app_compose_src: $tmp/compose-2.yml
deploy_app_healthcheck_command: []"
run compose-new-file "$task" deploy -- test "$repo" "$T1"
{ [ "$rc" -eq 0 ] && cmp -s "$tmp/compose-2.yml" "$(app_dir test-web2)/compose.yml" && [ "$(backups)" -eq 0 ]; }
verdict "a deploy with a new compose file (\${IMAGE:?…}) succeeds and leaves no copy of the old one"
printf 'services:\n  web:\n    image: ${IMAGE}\n    command: broken\n' >"$tmp/compose-broken.yml"
snapshot
override "deploy_app_runtime: compose
deploy_app_compose_command: ['$tmp/fake-docker', compose]
deploy_app_compose_src: $tmp/compose-broken.yml
deploy_app_healthcheck_command: []"
run compose-broken "$task" deploy -- test "$repo" "$T2"
{ [ "$rc" -ne 0 ] && in_log "broken configuration" && in_log "went back to $image@$D1 and the compose file it replaced, which deploy-info.yml records" && unchanged \
    && cmp -s "$tmp/compose-2.yml" "$(app_dir test-web1)/compose.yml" && grep -qxF "IMAGE=$image@$D1" "$(app_dir test-web1)/.env" \
    && [ "$(backups)" -eq 0 ]; }
verdict "a compose deploy that fails puts back the compose file it replaced and the recorded IMAGE"
run compose-broken-same "$task" deploy -- test "$repo" "$T1"
{ [ "$rc" -ne 0 ] && in_log "went back to $image@$D1" && cmp -s "$tmp/compose-2.yml" "$(app_dir test-web1)/compose.yml"; }
verdict "a new compose file that fails with the running digest is put back too"
override "deploy_app_runtime: compose
deploy_app_compose_command: ['$tmp/fake-docker', compose]
deploy_app_compose_src: $tmp/compose-broken.yml
deploy_app_healthcheck_command: []
deploy_app_revert_on_failure: false"
run compose-broken-no-revert "$task" deploy -- test "$repo" "$T2"
{ [ "$rc" -ne 0 ] && in_log "did not go back" && in_log "the compose file it replaced is kept as $(app_dir test-web1)/compose.yml." \
    && [ "$(backups)" -eq 1 ] && cmp -s "$tmp/compose-2.yml" "$(app_dir test-web1)"/compose.yml.*~; }
verdict "without going back, the failure names the copy kept of the compose file it replaced"
rm -f "$(app_dir test-web1)"/compose.yml.*~
cp "$tmp/compose-2.yml" "$(app_dir test-web1)/compose.yml"

# Compose v1 has no `up --wait`: refused before the host is touched.
printf '%s\n' '#!/bin/sh' \
    'if [ "$1" = version ]; then echo "docker-compose version 1.29.2, build 5becea4c"; exit 0; fi' \
    'echo "No such option: --wait" >&2; exit 2' >"$tmp/fake-compose-v1"
chmod +x "$tmp/fake-compose-v1"
snapshot
env_before=$(cat "$(app_dir test-web1)/.env")
override "deploy_app_runtime: compose
deploy_app_compose_command: ['$tmp/fake-compose-v1']
deploy_app_compose_src: $tmp/compose.yml
deploy_app_healthcheck_command: []"
run compose-v1 "$task" deploy -- test "$repo" "$T2"
{ [ "$rc" -ne 0 ] && in_log "needs Docker Compose v2.17 or later" && unchanged \
    && [ "$(cat "$(app_dir test-web1)/.env")" = "$env_before" ]; }
verdict "Docker Compose v1 is refused before anything on the host is touched"
override "deploy_app_runtime: compose
deploy_app_compose_command: ['$tmp/no-such-docker', compose]
deploy_app_compose_src: $tmp/compose.yml
deploy_app_healthcheck_command: []"
run compose-missing "$task" deploy -- test "$repo" "$T2"
{ [ "$rc" -ne 0 ] && in_log "needs Docker Compose v2.17 or later" && in_log "no-such-docker" && unchanged \
    && [ "$(cat "$(app_dir test-web1)/.env")" = "$env_before" ]; }
verdict "a host without docker is refused before anything on it is touched"
no_override

# --- two apps deployed to one workspace at the same time --------------------------
# Each `task deploy` resolves into its own facts file (STATE_DIR/WS/facts/REPO.json):
# with one file per workspace, whichever resolve wrote last was applied by both.
api=$REGISTRY/acme/api
api_revision=$(printf 'api 1' | sha1sum | cut -c1-40)
DA=$(scripts/push-sample "$api:${api_revision:0:7}" \
    --label "org.opencontainers.image.revision=$api_revision" \
    --label "org.opencontainers.image.description=the api" \
    --label "org.opencontainers.image.created=2026-01-25T01:00:00Z" \
    --label "org.opencontainers.image.source=https://git.example.com/acme/api")
n=$((n + 1)); log_web=$(printf '%s/logs/%02d-together-web.log' "$tmp" "$n")
n=$((n + 1)); log_api=$(printf '%s/logs/%02d-together-api.log' "$tmp" "$n")
"$task" deploy -- test "$repo" "$T2" >"$log_web" 2>&1 &
pid_web=$!
"$task" deploy -- test acme/api "${api_revision:0:7}" >"$log_api" 2>&1 &
pid_api=$!
wait "$pid_web"; rc_web=$?
wait "$pid_api"; rc_api=$?
log=$tmp/logs/together.log
cat "$log_web" "$log_api" >"$log"
api_info() { echo "$tmp/hosts/$1/opt/acme/api/deploy-info.yml"; }
{ [ -n "$DA" ] && [ "$rc_web" -eq 0 ] && [ "$rc_api" -eq 0 ] && both_digest "$D2" \
    && [ "$(field "$(api_info test-web1)" digest)" = "$DA" ] && [ "$(field "$(api_info test-web2)" digest)" = "$DA" ] \
    && [ "$(field "$(api_info test-web1)" image)" = "$api" ]; }
verdict "two apps deployed to one workspace at once each record their own image and digest"

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
