#!/usr/bin/env bash
# Open WebUI in front of the gateway, end to end, set up as docs/clients.md says. Not in CI: it
# installs Open WebUI (some 7 GB from PyPI, torch included) into a virtualenv of its own.
#
# Signs up two people through Open WebUI's API (the first becomes its admin and adds the second),
# chats as each the way the browser does (POST /api/chat/completions), asks Open WebUI's task endpoints for the
# chat's title, tags and follow-ups (sent on to the main model, as with no Task Model set), and
# prints what the gateway stored for each person (its admin export). Fails when a person's turns
# were not kept under their own id, or when a task changed a profile.
#
#   bench/open_webui_smoke.sh        # starts `rlpa serve` (embedded model, a temporary SQLite)
#   RLPA_GATEWAY=http://127.0.0.1:8000 RLPA_ADMIN_KEY=... bench/open_webui_smoke.sh
#
# RLPA_GATEWAY must have RLPA_USER_HEADER=X-OpenWebUI-User-Id. Environment: OWUI_VENV (an Open
# WebUI install to reuse; default: a new one under the work directory), OWUI_VERSION (0.12.4),
# PYTHON (python3.11: Open WebUI needs 3.11 or 3.12), OWUI_PORT (8181), RLPA_PORT (8137), RLPA
# (the gateway's command, default .venv/bin/rlpa), WORK (default: a new temporary directory,
# removed at the end unless KEEP=1).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

OWUI_VERSION=${OWUI_VERSION:-0.12.4}
PYTHON=${PYTHON:-python3.11}
OWUI_PORT=${OWUI_PORT:-8181}
RLPA_PORT=${RLPA_PORT:-8137}
RLPA=${RLPA:-$ROOT/.venv/bin/rlpa}
WORK=${WORK:-$(mktemp -d /tmp/owui-smoke-XXXXXX)}
OWUI_VENV=${OWUI_VENV:-$WORK/venv}
mkdir -p "$WORK"
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ ${KEEP:-0} == 1 ]]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

wait_for() {  # URL SECONDS LOG PID: until URL answers 200, while PID runs
  local deadline=$((SECONDS + $2))
  until curl -fsS -o /dev/null "$1" 2>/dev/null; do
    if ((SECONDS > deadline)) || ! kill -0 "$4" 2>/dev/null; then
      echo "no answer from $1 ($2 s at most); the end of $3:" >&2
      tail -n 40 "$3" >&2
      exit 1
    fi
    sleep 2
  done
}

if [[ ! -x $OWUI_VENV/bin/open-webui ]]; then
  echo "installing open-webui==$OWUI_VERSION into $OWUI_VENV (minutes, some 7 GB)"
  "$PYTHON" -m venv "$OWUI_VENV"
  "$OWUI_VENV/bin/pip" install -q --progress-bar off "open-webui==$OWUI_VERSION"
fi
echo "open-webui $("$OWUI_VENV/bin/pip" show open-webui 2>/dev/null | sed -n 's/^Version: //p')"

if [[ -z ${RLPA_GATEWAY:-} ]]; then
  RLPA_ADMIN_KEY=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
  RLPA_GATEWAY=http://127.0.0.1:$RLPA_PORT
  # Run from the work directory, so that no .env of the checkout is read.
  (cd "$WORK" && exec env RLPA_DATABASE_URL="sqlite+aiosqlite:///$WORK/rlpa.db" \
    RLPA_ADMIN_API_KEY="$RLPA_ADMIN_KEY" RLPA_USER_HEADER=X-OpenWebUI-User-Id \
    RLPA_LOG_FORMAT=text "$RLPA" serve --host 127.0.0.1 --port "$RLPA_PORT" \
    >"$WORK/rlpa.log" 2>&1) &
  PIDS+=($!)
  wait_for "$RLPA_GATEWAY/ready" 300 "$WORK/rlpa.log" "$!"
  echo "gateway: rlpa serve on $RLPA_GATEWAY (embedded model, $WORK/rlpa.db)"
else
  : "${RLPA_ADMIN_KEY:?set RLPA_ADMIN_KEY, the admin key of the gateway (a chat key, the exports)}"
  echo "gateway: $RLPA_GATEWAY"
fi
export RLPA_GATEWAY RLPA_ADMIN_KEY

# Open WebUI's key to the gateway: a chat key bound to no one (docs/clients.md).
CHAT_KEY=$(curl -fsS -X POST "$RLPA_GATEWAY/admin/keys" \
  -H "Authorization: Bearer $RLPA_ADMIN_KEY" -H 'Content-Type: application/json' \
  -d '{"name": "open-webui smoke", "scopes": ["chat"]}' |
  "$OWUI_VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["key"])')

# Offline: no embedding, reranking or speech model downloaded at start, no update check, no
# telemetry. Sign-up open, new people users at once (not "pending"), and the connection's models
# open to every user (otherwise only the admin sees them until made public in Admin Panel >
# Settings > Models).
(cd "$WORK" && exec env DATA_DIR="$WORK/owui-data" \
  WEBUI_SECRET_KEY="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')" \
  WEBUI_AUTH=true ENABLE_SIGNUP=true DEFAULT_USER_ROLE=user BYPASS_MODEL_ACCESS_CONTROL=true \
  OFFLINE_MODE=true HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
  RAG_EMBEDDING_ENGINE=openai RAG_EMBEDDING_MODEL_AUTO_UPDATE=false \
  RAG_RERANKING_MODEL_AUTO_UPDATE=false WHISPER_MODEL_AUTO_UPDATE=false \
  BYPASS_EMBEDDING_AND_RETRIEVAL=true ENABLE_WEB_SEARCH=false \
  ANONYMIZED_TELEMETRY=false DO_NOT_TRACK=true SCARF_NO_ANALYTICS=true \
  ENABLE_VERSION_UPDATE_CHECK=false ENABLE_OLLAMA_API=false \
  ENABLE_FORWARD_USER_INFO_HEADERS=true \
  OPENAI_API_BASE_URL="$RLPA_GATEWAY/v1" OPENAI_API_KEY="$CHAT_KEY" \
  "$OWUI_VENV/bin/open-webui" serve --host 127.0.0.1 --port "$OWUI_PORT" \
  >"$WORK/open-webui.log" 2>&1) &
PIDS+=($!)
wait_for "http://127.0.0.1:$OWUI_PORT/health" 600 "$WORK/open-webui.log" "$!"
echo "open-webui on http://127.0.0.1:$OWUI_PORT"

OWUI=http://127.0.0.1:$OWUI_PORT "$OWUI_VENV/bin/python" - <<'PY'
"""Two people through Open WebUI's API, then what the gateway kept for each."""

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

OWUI, GATEWAY, ADMIN = os.environ["OWUI"], os.environ["RLPA_GATEWAY"], os.environ["RLPA_ADMIN_KEY"]


def call(method, url, token, body=None, timeout=600):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def export(person):
    status, body = call("GET", f"{GATEWAY}/admin/users/{urllib.parse.quote(person, safe='')}/export", ADMIN)
    return body if status == 200 else None


def content(answer):
    return answer["choices"][0]["message"]["content"] if isinstance(answer, dict) else answer


people = {
    "Alice": ["Hi, I'm a nurse in Seattle and I love hiking.", "Any idea for my day off?"],
    "Bob": ["Hello, I'm Bob, a firefighter in Denver and I play chess.", "What should I cook tonight?"],
}
accounts = {}
for name in people:
    form = {"name": name, "email": f"{name.lower()}@example.com", "password": f"{name}-Smoke-1"}
    if not accounts:  # the first to sign up becomes Open WebUI's admin
        status, account = call("POST", f"{OWUI}/api/v1/auths/signup", "", form)
    else:
        # Open WebUI closes sign-up once its admin exists: the admin adds the next person (Admin
        # Panel > Users), who then signs in.
        admin = accounts["Alice"]["token"]
        status, added = call("POST", f"{OWUI}/api/v1/auths/add", admin, form | {"role": "user"})
        assert status == 200, (status, added)
        status, account = call("POST", f"{OWUI}/api/v1/auths/signin", "", {
            "email": form["email"], "password": form["password"],
        })
    assert status == 200, (status, account)
    accounts[name] = account
    print(f"{name}: Open WebUI id {account['id']}, role {account['role']}")

status, models = call("GET", f"{OWUI}/api/models", accounts["Alice"]["token"])
assert status == 200, (status, models)
ids = [m["id"] for m in models["data"]]
print("models Open WebUI lists:", ids)
model = next(i for i in ids if not i.endswith("-nomemory"))

failed = []
for name, said in people.items():
    token, messages = accounts[name]["token"], []
    for text in said:
        messages.append({"role": "user", "content": text})
        status, answer = call("POST", f"{OWUI}/api/chat/completions", token, {
            "model": model, "messages": messages, "stream": False,
        })
        assert status == 200, (status, answer)
        reply = content(answer)
        messages.append({"role": "assistant", "content": reply})
        print(f"{name}: {text!r} -> {reply!r}")
    before = export(accounts[name]["id"])
    # Open WebUI's own tasks on the chat, sent on to the main model with the person's headers.
    for task in ("title", "tags", "follow_up"):
        status, answer = call("POST", f"{OWUI}/api/v1/tasks/{task}/completions", token, {
            "model": model, "messages": messages,
        })
        reply = content(answer) if status == 200 else f"HTTP {status}: {answer}"
        try:
            parsed = json.loads(reply)
        except (TypeError, ValueError):
            parsed = None
        print(f"{name} {task} task -> {reply!r}" + ("" if parsed is not None else "  (not JSON)"))
    after = export(accounts[name]["id"])
    if after is None:
        failed.append(f"{name}: the gateway keeps nothing under their Open WebUI id")
        continue
    if before is not None and len(after["versions"]) != len(before["versions"]):
        failed.append(f"{name}: a task changed the profile")

print("\nWhat the gateway stored (GET /admin/users/{id}/export):")
for name, account in accounts.items():
    kept = export(account["id"])
    if kept is None:
        print(f"  {name} ({account['id']}): nothing")
        continue
    latest = kept["versions"][-1]["traits"] if kept["versions"] else []
    print(f"  {name} ({account['id']}): {len(kept['versions'])} profile versions, traits {latest}")
    for version in kept["versions"]:
        print(f"    v{version['version']} {version['source']}: +{version['added']} -{version['removed']}")
for other in ("alice@example.com", "Alice", "bob@example.com", "Bob"):
    if export(other) is not None:
        failed.append(f"the gateway keeps a user named {other!r}: not the id header")
if failed:
    print("FAILED:", *failed, sep="\n  ")
    sys.exit(1)
print("ok: each person's turns kept under their own Open WebUI id; tasks changed no profile")
PY
