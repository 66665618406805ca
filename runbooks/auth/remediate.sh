#!/usr/bin/env bash
# Demo remediation for auth: deterministic and fast, so the demo shows both outcomes.
# Usage: remediate.sh --action ACTION --alert-id INCIDENT_ID (see ../_lib/demo-remediate.sh).
set -euo pipefail
source "$(dirname "$(readlink -f "$0")")/../_lib/demo-remediate.sh"
parse_args "$@"

case "$action" in
  rollback) outcome=${SLO_REMEDIATE_OUTCOME:-succeed}; result="rolled back; logins recovering" ;;
  restart) outcome=${SLO_REMEDIATE_OUTCOME:-succeed}; result="auth pods restarted" ;;
  flush_cache) outcome=${SLO_REMEDIATE_OUTCOME:-succeed}; result="token cache flushed and warmed at 10% per minute" ;;
  *) unknown_action auth ;;
esac

finish auth
