"""Done-when: a real public incident history (GitHub's status page, 19 incidents 2011–2023, vendored in
tests/fixtures/statuspage/ — see its README), imported through `slo import incidents --format statuspage`,
gives in `slo report quarterly --format json` per quarter the incident counts by severity and the TTR
count, p50 and p90 of an independent computation of DESIGN §2 written here in plain Python + numpy."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from tests.support.cli import slo

ROOT = Path(__file__).resolve().parents[2]
HISTORY = ROOT / "tests" / "fixtures" / "statuspage" / "github_incidents.json"
pytestmark = pytest.mark.integration


def expected_by_quarter() -> dict[str, dict]:
    """DESIGN §2 by hand: impact critical/major/minor/none → SEV1/2/3/4, maintenance is no incident;
    impact_start = started_at else created_at; the quarter of impact_start (UTC); TTR = resolved_at −
    impact_start in minutes, open incidents (no resolved_at) left out; p50/p90 by linear interpolation."""
    sev = {"critical": "SEV1", "major": "SEV2", "minor": "SEV3", "none": "SEV4"}

    def utc(text: str) -> dt.datetime:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC)

    out: dict[str, dict] = defaultdict(lambda: {"counts": dict.fromkeys(sev.values(), 0), "ttr": []})
    for inc in json.loads(HISTORY.read_text())["incidents"]:
        if inc["impact"] == "maintenance" or inc.get("scheduled_for"):
            continue
        start = utc(inc.get("started_at") or inc["created_at"])
        quarter = f"{start.year}-Q{(start.month - 1) // 3 + 1}"
        out[quarter]["counts"][sev[inc["impact"]]] += 1
        if inc.get("resolved_at"):
            out[quarter]["ttr"].append((utc(inc["resolved_at"]) - start).total_seconds() / 60)
    return dict(out)




def test_real_statuspage_history_matches_an_independent_computation(tmp_path: Path) -> None:
    imported = slo(tmp_path, "import", "incidents", "--format", "statuspage", str(HISTORY), "--json")
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["applied"] == 19

    expected = expected_by_quarter()
    latest = max(expected)
    done = slo(tmp_path, "report", "quarterly", "--quarter", latest, "--format", "json")
    assert done.returncode == 0, done.stderr
    trend = {t["quarter"]: t for t in json.loads(done.stdout)["trend"]}
    assert sorted(trend) == sorted(expected)
    for quarter, exp in expected.items():
        got = trend[quarter]
        assert got["by_severity"] == exp["counts"], quarter
        assert got["total"] == sum(exp["counts"].values())
        ttr = got["ttr_minutes"]
        assert ttr["count"] == len(exp["ttr"]), quarter
        assert ttr["p50"] == pytest.approx(float(np.percentile(exp["ttr"], 50)), abs=1e-3), quarter
        assert ttr["p90"] == pytest.approx(float(np.percentile(exp["ttr"], 90)), abs=1e-3), quarter
        print(f"{quarter}: {exp['counts']} TTR n={ttr['count']} p50={ttr['p50']} p90={ttr['p90']}")

    # one quarter's own report says the same in its `incidents` section (DESIGN §3 fields)
    q = "2022-Q4"
    one = json.loads(slo(tmp_path, "report", "quarterly", "--quarter", q, "--format", "json").stdout)
    assert one["incidents"]["by_severity"] == expected[q]["counts"]
    assert one["incidents"]["ttr_minutes"]["p50"] == pytest.approx(
        float(np.median(expected[q]["ttr"])), abs=1e-3
    )

    # importing the same file again changes nothing
    again = slo(tmp_path, "import", "incidents", "--format", "statuspage", str(HISTORY), "--json")
    assert json.loads(again.stdout) == {
        "incidents": 19,
        "accepted": 0,
        "duplicates": 19,
        "skipped_maintenance": 0,
        "applied": 0,
        "queued": False,
    }
