# shellcheck shell=bash
# Source me:  . scripts/pulumi-env.sh
# Sets the offline Pulumi environment (PATH with the toolchain bin dir first, PULUMI_HOME,
# PULUMI_BACKEND_URL=file://..., no update checks, no plugin downloads, ...) from
# `scripts/toolchain env`, and KUBECONFIG for the local cluster (scripts/local-cluster), unless
# LLMAB_USE_CURRENT_CONTEXT=1, in which case your KUBECONFIG / current context is kept.
# It starts and builds nothing: run scripts/toolchain and scripts/local-cluster up (or scripts/stack).
_llmab_scripts=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)
if _llmab_env=$("$_llmab_scripts/toolchain" env); then
  eval "$_llmab_env"
  if [[ ${LLMAB_USE_CURRENT_CONTEXT:-0} != 1 ]]; then
    KUBECONFIG=$("$_llmab_scripts/local-cluster" kubeconfig)
    export KUBECONFIG
    [[ -f $KUBECONFIG ]] || echo "[pulumi-env] note: local cluster not created yet; run scripts/local-cluster up" >&2
  fi
else
  echo "[pulumi-env] scripts/toolchain env failed" >&2
fi
unset _llmab_scripts _llmab_env
