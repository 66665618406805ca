#!/usr/bin/env bash
# Demo remediation for checkout-api: deterministic and fast, so the demo shows both outcomes.
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
  rollback) outcome=${SLO_REMEDIATE_OUTCOME:-succeed}; result="rolled back to the previous release; canary healthy" ;;
  restart) outcome=${SLO_REMEDIATE_OUTCOME:-succeed}; result="rolling restart done; all pods ready" ;;
  scale_up) outcome=${SLO_REMEDIATE_OUTCOME:-succeed}; result="scaled from 12 to 18 pods" ;;
  failover_db) outcome=${SLO_REMEDIATE_OUTCOME:-succeed}; result="replica promoted; writes going to the new primary" ;;
  *) echo "checkout-api: unknown action '$action' (not in actions.yaml); nothing done" >&2; exit 2 ;;
esac

echo "checkout-api: $action for $alert_id (attempt ${SLO_ATTEMPT:-1})"
if [[ -n "${SLO_REMEDIATE_LOG:-}" ]]; then
  printf '%s %s %s %s\n' "checkout-api" "$action" "$alert_id" "$outcome" >> "$SLO_REMEDIATE_LOG"
fi
case "$outcome" in
  succeed) echo "ok: $result"; exit 0 ;;
  hang) echo "waiting for the rollout..."; sleep 60; exit 0 ;;
  *) echo "failed: $result" >&2; exit 1 ;;
esac
