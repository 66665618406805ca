#!/usr/bin/env bash
# Demo remediation for search: deterministic and fast, so the demo shows both outcomes.
# Usage: remediate.sh --action ACTION --alert-id INCIDENT_ID
# Each action's outcome is fixed below; SLO_REMEDIATE_OUTCOME=succeed|fail|hang overrides it (tests).
# SLO_REMEDIATE_LOG, when set, gets one line per run: service, action, incident id, outcome.
set -euo pipefail

action="" alert_id=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --action) action="${2:-}"; shift 2 ;;
    --alert-id) alert_id="${2:-}"; shift 2 ;;
    *) echo "usage: remediate.sh --action ACTION --alert-id INCIDENT_ID (unknown argument: $1)" >&2; exit 2 ;;
  esac
done
[[ -n "$action" && -n "$alert_id" ]] || { echo "usage: remediate.sh --action ACTION --alert-id ID" >&2; exit 2; }

case "$action" in
  rollback) outcome=${SLO_REMEDIATE_OUTCOME:-succeed}; result="query service rolled back; planner v1 serving" ;;
  restart) outcome=${SLO_REMEDIATE_OUTCOME:-succeed}; result="query nodes restarted" ;;
  scale_up) outcome=${SLO_REMEDIATE_OUTCOME:-succeed}; result="added 3 query nodes" ;;
  flush_cache) outcome=${SLO_REMEDIATE_OUTCOME:-fail}; result="cache flush timed out on 2 of 6 nodes: the cache cluster is degraded" ;;
  *) echo "search: unknown action '$action' (not in actions.yaml); nothing done" >&2; exit 2 ;;
esac

echo "search: $action for $alert_id (attempt ${SLO_ATTEMPT:-1})"
if [[ -n "${SLO_REMEDIATE_LOG:-}" ]]; then
  printf '%s %s %s %s\n' "search" "$action" "$alert_id" "$outcome" >> "$SLO_REMEDIATE_LOG"
fi
case "$outcome" in
  succeed) echo "ok: $result"; exit 0 ;;
  hang) echo "waiting for the rollout..."; sleep 60; exit 0 ;;
  *) echo "failed: $result" >&2; exit 1 ;;
esac
