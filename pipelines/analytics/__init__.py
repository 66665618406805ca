"""Incident analytics and the quarterly reliability review (issue 5).

Everything here is computed on demand from the published snapshot by SQL over the tables the engine and
the incident fold write (no tables of its own): `mttx` (TTD/TTA/TTM/TTR and their distributions),
`repeats`, `success_metrics` (seed 002's targets), `alert_quality` (and the burn-rate backtest),
`slo_quarter` (attainment, budget, policy states), `deploys` (deploy correlation), `review` (the report
model), `render` (Markdown/HTML), `summary` (the optional model-written executive summary) and
`importer` (historical incidents from Statuspage or CSV through the inbox).
"""
