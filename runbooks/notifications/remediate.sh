#!/usr/bin/env bash
# Demo remediation for notifications: deterministic and fast, so the demo shows both outcomes.
# Usage: remediate.sh --action ACTION --alert-id INCIDENT_ID (see ../_lib/demo-remediate.sh).
set -euo pipefail
source "$(dirname "$(readlink -f "$0")")/../_lib/demo-remediate.sh"
parse_args "$@"

case "$action" in
  restart) outcome=${SLO_REMEDIATE_OUTCOME:-succeed}; result="delivery workers restarted" ;;
  scale_up) outcome=${SLO_REMEDIATE_OUTCOME:-succeed}; result="added 6 workers" ;;
  *) unknown_action notifications ;;
esac

finish notifications
