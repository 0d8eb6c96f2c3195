# shellcheck shell=bash
# Source me:  . scripts/pulumi-env.sh [STACK]     (STACK: $LLMAB_STACK or dev)
# For running `pulumi` yourself (config set, stack output, state, ...) on the state `make up` uses:
# PATH with the toolchain first, PULUMI_HOME, PULUMI_BACKEND_URL (the local file backend unless
# you set one), the stack's generated passphrase file (unless PULUMI_CONFIG_PASSPHRASE(_FILE) is
# set) and KUBECONFIG of the local cluster (unless LLMAB_USE_CURRENT_CONTEXT=1).
# It starts and builds nothing. `pulumi preview`/`up` need the deploy driver: use scripts/stack.
_llmab_scripts=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)
_llmab_stack=${1:-${LLMAB_STACK:-dev}}
if _llmab_env=$("$_llmab_scripts/toolchain" env); then
  eval "$_llmab_env"
  export PULUMI_BACKEND_URL=${PULUMI_BACKEND_URL:-file://$LLMAB_STATE_DIR}
  if [[ -z ${PULUMI_CONFIG_PASSPHRASE:-} && -z ${PULUMI_CONFIG_PASSPHRASE_FILE:-} && \
        -f $LLMAB_STATE_DIR/passphrases/llm-ab.$_llmab_stack ]]; then
    export PULUMI_CONFIG_PASSPHRASE_FILE=$LLMAB_STATE_DIR/passphrases/llm-ab.$_llmab_stack
  fi
  if [[ ${LLMAB_USE_CURRENT_CONTEXT:-0} != 1 ]]; then
    KUBECONFIG=$("$_llmab_scripts/local-cluster" kubeconfig)
    export KUBECONFIG
  fi
else
  echo "[pulumi-env] scripts/toolchain env failed" >&2
fi
unset _llmab_scripts _llmab_env _llmab_stack
