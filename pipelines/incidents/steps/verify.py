"""Verification step (seed 003): did the SLO recover after a remediation that succeeded?

Verified when the SLO's shortest alert window burns below its lowest alert factor within the set time
after the remediation (the incident is then mitigated); else the incident escalates.
"""

from __future__ import annotations

import datetime as dt

import duckdb

from pipelines.incidents.context import evaluated_to
from pipelines.incidents.fold import add_timeline, incident
from pipelines.incidents.isolation import Isolation
from pipelines.timeutil import datetime_of, minute_of


def recovery_minute(
    buckets: list[tuple[int, int, int]], start: int, end: int, short: int, target: float, factor: float
) -> int | None:
    """The first instant m in [start + short, end] where the burn rate over [m − short, m) is below
    `factor` (pure; buckets before `start` are ignored: only post-remediation data counts)."""
    by_minute = {m: (g, v) for m, g, v in buckets if m >= start}
    for m in range(start + short, end + 1):
        good = valid = 0
        for k in range(m - short, m):
            g, v = by_minute.get(k, (0, 0))
            good, valid = good + g, valid + v
        if valid and ((valid - good) / valid) / (1.0 - target) < factor:
            return m
    return None


def verify_remediations(con: duckdb.DuckDBPyConnection, now: dt.datetime, iso: Isolation) -> None:
    """Verified when the SLO's shortest alert window burns below its lowest alert factor (under every
    alert threshold) within the set time after the remediation; else the incident escalates."""
    rows = con.execute(
        """SELECT r.id, r.incident_id, r.action, r.finished_at, r.verify_by, i.slo_id
           FROM remediations r JOIN incidents i ON i.id = r.incident_id
           WHERE r.status = 'succeeded' AND r.verified IS NULL ORDER BY r.finished_at"""
    ).fetchall()
    latest = evaluated_to(con)
    for row in rows:
        if iso.run("verification", row[0], row[1], _verify_one, con, now, latest, *row):
            iso.report.verified.append(row[0])


def _verify_one(
    con: duckdb.DuckDBPyConnection,
    now: dt.datetime,
    latest: dt.datetime | None,
    rid: str,
    iid: str,
    action: str,
    finished: dt.datetime,
    verify_by: dt.datetime,
    slo_id: str | None,
) -> bool:
    """Verify one remediation; True when it was verified now."""
    horizon = min(now, verify_by)
    recovered: dt.datetime | None = None
    how = ""
    if slo_id:
        params = con.execute(
            """SELECT s.slo_key, s.target, min(a.short_window), min(a.factor) FROM slos s
               JOIN slo_alerts a USING (slo_key) WHERE s.slo_id = ? GROUP BY ALL""",
            [slo_id],
        ).fetchone()
        if params is not None:
            key, target, short, factor = params
            start = minute_of(finished) + 1
            end = minute_of(horizon)
            if latest is not None:
                end = min(end, minute_of(latest))
            buckets = con.execute(
                "SELECT minute, good, valid FROM buckets WHERE slo_key = ? AND minute >= ? AND minute < ?",
                [key, start, end],
            ).fetchall()
            m = recovery_minute(
                [(int(a), int(b), int(c)) for a, b, c in buckets],
                start,
                end,
                int(short),
                float(target),
                float(factor),
            )
            how = f"{slo_id} burn rate over {short} min below {factor:g}"
            if m is not None:
                recovered = datetime_of(m).replace(tzinfo=None)
    else:
        # No SLO: every alert of the incident resolved by the deadline.
        row = con.execute(
            """SELECT count(*) FILTER (WHERE status = 'firing'), count(*) FILTER (WHERE status
                = 'resolved'),
                      max(ends_at) FROM alerts WHERE incident_id = ?""",
            [iid],
        ).fetchone()
        how = "all of the incident's alerts resolved"
        if row and row[1] >= row[0] and row[2] is not None and finished <= row[2] <= horizon:
            recovered = row[2]
        elif row and row[1] >= row[0] and row[2] is not None and row[2] < finished:
            recovered = finished
    if recovered is not None:
        con.execute("UPDATE remediations SET verified = TRUE, verified_at = ? WHERE id = ?", [recovered, rid])
        add_timeline(
            con,
            iid,
            recovered,
            "verified",
            "verification",
            f"remediation {rid} ({action}) verified: {how}",
        )
        inc = incident(con, iid)
        if inc and inc["status"] in ("triggered", "acknowledged"):
            con.execute(
                """UPDATE incidents SET status = 'mitigated', mitigated_at = ?,
                    mitigated_at_source = 'verification',
                       updated_at = greatest(updated_at, ?) WHERE id = ?""",
                [recovered, recovered, iid],
            )
            add_timeline(
                con, iid, recovered, "mitigated", "verification", f"mitigated by {action} (verified)"
            )
        return True
    elif now >= verify_by:
        con.execute("UPDATE remediations SET verified = FALSE WHERE id = ?", [rid])
        add_timeline(
            con,
            iid,
            verify_by,
            "verification_failed",
            "verification",
            f"remediation {rid} ({action}) not verified by {verify_by:%H:%M}: {how} did not happen",
        )
        con.execute(
            "UPDATE incidents SET escalation_pending = ?, updated_at = greatest(updated_at, ?) WHERE id = ?",
            [f"verification failed after {action}", verify_by, iid],
        )
    return False
