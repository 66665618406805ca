"""Metric sources: each yields per-minute `slo_id, minute, good, valid` rows."""
