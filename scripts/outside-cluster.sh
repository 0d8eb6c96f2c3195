# shellcheck shell=bash
# Sourced by the scripts that run our CLIs from this machine against a deployed stack (scripts/smoke,
# scripts/analyze); needs HERE (scripts/), STACK, PY and log() set first. It reads the stack's outputs
# into $outputs (exit 2 with the reason when the engine can't or the stack isn't deployed), sources
# scripts/pulumi-env.sh (the stack's KUBECONFIG), and defines
#   forward VAR SERVICE REMOTE_PORT   kubectl port-forward svc/SERVICE in $NS to a free local port and
#                                     set VAR to its URL; every forward ends when the script exits.

rc=0
outputs=$("$HERE/stack" outputs "$STACK" -- --json) || rc=$?
case $rc in
  0) ;;
  3) log "the Pulumi engine is not available, so the outputs of $STACK can't be read (see above; scripts/toolchain status)"; exit 2 ;;
  *) log "the engine could not read the outputs of stack $STACK (exit $rc, see above)"; exit 2 ;;
esac
if [[ $("$PY" -c 'import json,sys; print(len(json.loads(sys.argv[1])))' "$outputs") == 0 ]]; then
  log "stack $STACK is not deployed (it has no outputs): run make up STACK=$STACK"; exit 2
fi
. "$HERE/pulumi-env.sh" "$STACK"

_forward_pids=()
_forward_cleanup() { for p in "${_forward_pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap _forward_cleanup EXIT
forward() {  # forward VAR SERVICE REMOTE_PORT (in this shell, not $(...), so the pid is kept for the cleanup)
  local -n _url=$1
  local port; port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  kubectl -n "$NS" port-forward --address 127.0.0.1 "svc/$2" "$port:$3" >/dev/null 2>&1 &
  _forward_pids+=($!)
  _url="http://127.0.0.1:$port"
}
