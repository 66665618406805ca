"""`slo serve`: the ingest API (DESIGN §3 HTTP) and the worker that runs the pipeline cycle.

    app.py       routes, authentication, request checks, error mapping, `serve` and the CLI entry
    worker.py    the thread that runs the pipeline cycle every SLO_CYCLE_SECONDS
    openapi.py   the documented shapes (pydantic models) and each POST route's OpenAPI entry
    settings.py  the service's knobs from the environment

The ingest door answers without loading DuckDB or pandas: app.py and worker.py import the store,
the cycle and the specs inside the functions that need them, deliberately, for start-up time.


    POST /api/incidents/ingest          Alertmanager v4 | PagerDuty V3 | generic alert → inbox → 202
    POST /api/incidents/{id}/commands   a human step (acknowledge, resolve, root_cause…) → inbox → 202
    GET  /api/incidents                 incidents from the published snapshot
    GET  /api/health                    inbox, worker and snapshot freshness
    GET  /openapi.json, /docs           the OpenAPI document

FastAPI because it is the Python ecosystem's default for a JSON API: the OpenAPI document and its
browsable /docs come from the code itself, and uvicorn, its server, is already installed as a
dependency of Streamlit. Routes read the raw body themselves (not a pydantic model) so that every
refusal is one of the documented answers (400/401/403/413/415 with what was wrong and where), never
FastAPI's 422, and so the PagerDuty signature is checked over the exact bytes received.

Durability: a 202 is sent only after the inbox's COMMIT returned (SQLite WAL, synchronous=FULL).
Concurrent deliveries share one commit (`inbox.GroupCommit`), which is what makes 1,000 alerts/s on
one disk possible. The worker thread runs `cycle.run_cycle` every SLO_CYCLE_SECONDS under the
single-writer lock; a failed cycle is logged and the next one runs on time.
"""
