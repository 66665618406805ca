"""Settings from the environment (DESIGN §3), with an optional `.env` file in the working directory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def _dotenv(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.removeprefix("export ").partition("=")
        values[name.strip()] = value.strip().strip("'\"")
    return values


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    specs_dir: Path

    @classmethod
    def load(cls, env: dict[str, str] | None = None) -> Settings:
        merged = {**_dotenv(Path(".env")), **(env if env is not None else os.environ)}
        return cls(
            data_dir=Path(merged.get("SLO_DATA_DIR", "data")),
            specs_dir=Path(merged.get("SLO_SPECS_DIR", "slo_specs")),
        )
