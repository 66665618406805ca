"""Incident analytics and the quarterly reliability review (issue 5).

The cycle's analytics stage (`tables.refresh`) materialises the per-incident durations and their
quarterly roll-up; the rest is computed on demand from the published snapshot by SQL over those and the
tables the engine and the incident fold write: `mttx` (TTD/TTA/TTM/TTR and their distributions),
`repeats`, `success_metrics` (seed 002's targets), `alert_quality` (and the burn-rate backtest),
`slo_quarter` (attainment, budget, policy states), `deploys` (deploy correlation), `review` (the report
model), `render` (Markdown/HTML), `summary` (the optional model-written executive summary) and
`importer` (historical incidents from Statuspage or CSV through the inbox).
"""
