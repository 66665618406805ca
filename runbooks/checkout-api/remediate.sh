#!/usr/bin/env bash
# Demo remediation for checkout-api: deterministic and fast, so the demo shows both outcomes.
# Usage: remediate.sh --action ACTION --alert-id INCIDENT_ID (see ../_lib/demo-remediate.sh).
set -euo pipefail
source "$(dirname "$(readlink -f "$0")")/../_lib/demo-remediate.sh"
parse_args "$@"

case "$action" in
  rollback) outcome=${SLO_REMEDIATE_OUTCOME:-succeed}; result="rolled back to the previous release; canary healthy" ;;
  restart) outcome=${SLO_REMEDIATE_OUTCOME:-succeed}; result="rolling restart done; all pods ready" ;;
  scale_up) outcome=${SLO_REMEDIATE_OUTCOME:-succeed}; result="scaled from 12 to 18 pods" ;;
  failover_db) outcome=${SLO_REMEDIATE_OUTCOME:-succeed}; result="replica promoted; writes going to the new primary" ;;
  *) unknown_action checkout-api ;;
esac

finish checkout-api
