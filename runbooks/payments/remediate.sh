#!/usr/bin/env bash
# Demo remediation for payments: deterministic and fast, so the demo shows both outcomes.
# Usage: remediate.sh --action ACTION --alert-id INCIDENT_ID (see ../_lib/demo-remediate.sh).
set -euo pipefail
source "$(dirname "$(readlink -f "$0")")/../_lib/demo-remediate.sh"
parse_args "$@"

case "$action" in
  rollback) outcome=${SLO_REMEDIATE_OUTCOME:-fail}; result="rollback refused by the deploy tool: ledger schema migration 0042 is not reversible" ;;
  restart) outcome=${SLO_REMEDIATE_OUTCOME:-succeed}; result="workers restarted; in-flight captures drained first" ;;
  scale_up) outcome=${SLO_REMEDIATE_OUTCOME:-succeed}; result="added 4 workers" ;;
  *) unknown_action payments ;;
esac

finish payments
