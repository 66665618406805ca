"""The reliability dashboard's pipelines: `pipelines/cycle.py` is the write path, top to bottom."""

import os

# numpy asks the kernel for transparent huge pages on its large arrays; where the kernel then compacts
# memory on the page fault (THP defrag "madvise", this project's machines), first touching the engine's
# per-minute grid (0.7 GB at 1,000 SLOs × 30 days) cost 1-2 s of system time. numpy reads this setting
# when it is first imported; a caller's own setting wins.
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
