"""The incident stage's steps, which `pipelines.incidents.stage.process` runs in order.

Each works on the writer's connection at the cycle's `now`; a step that works record by record runs
each record through `Isolation.run`, so one bad incident or remediation never stops the others.
"""
