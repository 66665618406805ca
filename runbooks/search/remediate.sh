#!/usr/bin/env bash
# Demo remediation for search: deterministic and fast, so the demo shows both outcomes.
# Usage: remediate.sh --action ACTION --alert-id INCIDENT_ID (see ../_lib/demo-remediate.sh).
set -euo pipefail
source "$(dirname "$(readlink -f "$0")")/../_lib/demo-remediate.sh"
parse_args "$@"

case "$action" in
  rollback) outcome=${SLO_REMEDIATE_OUTCOME:-succeed}; result="query service rolled back; planner v1 serving" ;;
  restart) outcome=${SLO_REMEDIATE_OUTCOME:-succeed}; result="query nodes restarted" ;;
  scale_up) outcome=${SLO_REMEDIATE_OUTCOME:-succeed}; result="added 3 query nodes" ;;
  flush_cache) outcome=${SLO_REMEDIATE_OUTCOME:-fail}; result="cache flush timed out on 2 of 6 nodes: the cache cluster is degraded" ;;
  *) unknown_action search ;;
esac

finish search
