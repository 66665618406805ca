#!/usr/bin/env bash
# Demo remediation for inventory: deterministic and fast, so the demo shows both outcomes.
# Usage: remediate.sh --action ACTION --alert-id INCIDENT_ID (see ../_lib/demo-remediate.sh).
set -euo pipefail
source "$(dirname "$(readlink -f "$0")")/../_lib/demo-remediate.sh"
parse_args "$@"

case "$action" in
  restart) outcome=${SLO_REMEDIATE_OUTCOME:-fail}; result="replica inventory-2 is crash-looping again 40 s after restart (bad local state)" ;;
  scale_up) outcome=${SLO_REMEDIATE_OUTCOME:-succeed}; result="added 2 replicas" ;;
  *) unknown_action inventory ;;
esac

finish inventory
