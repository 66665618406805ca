# Shared by the demo services' remediate.sh scripts (sourced, not run): argument parsing, the log line
# and the outcome. Each script only says, per allow-listed action, its outcome and what it reports.
# Usage of a script: remediate.sh --action ACTION --alert-id INCIDENT_ID
# SLO_REMEDIATE_OUTCOME=succeed|fail|hang overrides an action's outcome (tests).
# SLO_REMEDIATE_LOG, when set, gets one line per run: service, action, incident id, outcome.

parse_args() {
  action="" alert_id=""
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --action) action="${2:-}"; shift 2 ;;
      --alert-id) alert_id="${2:-}"; shift 2 ;;
      *) echo "usage: remediate.sh --action ACTION --alert-id INCIDENT_ID (unknown argument: $1)" >&2; exit 2 ;;
    esac
  done
  [[ -n "$action" && -n "$alert_id" ]] || { echo "usage: remediate.sh --action ACTION --alert-id ID" >&2; exit 2; }
}

unknown_action() {  # SERVICE
  echo "$1: unknown action '$action' (not in actions.yaml); nothing done" >&2
  exit 2
}

finish() {  # SERVICE — uses $action $alert_id $outcome $result
  echo "$1: $action for $alert_id (attempt ${SLO_ATTEMPT:-1})"
  if [[ -n "${SLO_REMEDIATE_LOG:-}" ]]; then
    printf '%s %s %s %s\n' "$1" "$action" "$alert_id" "$outcome" >> "$SLO_REMEDIATE_LOG"
  fi
  case "$outcome" in
    succeed) echo "ok: $result"; exit 0 ;;
    hang) echo "waiting for the rollout..."; sleep 60; exit 0 ;;
    *) echo "failed: $result" >&2; exit 1 ;;
  esac
}
