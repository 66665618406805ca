"""The embedded demo, kept out of the production path: `generate` (deterministic synthetic metrics,
deploys and injected events), `specs/` (its SLO specs), `source` (the demo as a source: a Pull plus its
incident stage) and `replay` (that stage: the demo's incident history replayed through the real
incident stage with simulated responders). The cycle only ever sees a Pull and a stage."""
