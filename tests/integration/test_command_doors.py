"""The same human command through all four doors: the dashboard's action function, the HTTP API of a
real `slo serve` (loopback subprocess), the `slo incidents` CLI (subprocess) and the fold (a command
stored in the inbox as it is, the way an older version or a hand-written row would leave it).

- An action item without a priority is accepted by every door and folded into an action item with the
  default priority, P2 (issue 12: the API used to answer 202 to an action item the fold then rejected).
- The same item with priority "URGENT" is refused by every door with the same reason, and nothing is
  written: the dashboard and the API say it in the API's JSON-path form, the CLI and the fold's timeline
  in the argument form; both come from the one `CommandError` raised by `validate_args`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from dashboard import actions
from dashboard.auth import Identity
from pipelines.config import Settings
from pipelines.inbox import Entry, Inbox
from pipelines.incidents.contract import Alert, Command
from tests.support.cli import slo
from tests.support.incident_rows import publish_alert
from tests.support.service import running_service

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 6, 1, 10, 0)
DUE = "2026-12-31"
CHOICES = "P0, P1, P2, P3, P4"
# The two phrasings of one refusal (see the module docstring).
API_FORM = f"args.priority: 'URGENT' is not one of {CHOICES}"
ARG_FORM = f"priority 'URGENT': expected one of {CHOICES}"


def show(data_dir: Path, iid: str) -> dict[str, Any]:
    done = slo(data_dir, "incidents", "show", iid, "--json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def inbox_count(data_dir: Path) -> int:
    inbox = Inbox(data_dir)
    try:
        return inbox.count()
    finally:
        inbox.close()


def item(title: str, priority: str | None = None) -> dict[str, str]:
    args = {"title": title, "owner": "@shop-team", "due_date": DUE}
    return args if priority is None else {**args, "priority": priority}


DORA = Identity("dora", "dora@example.com", "Dora", "responder")  # the dashboard acts as a signed-in person


def test_an_action_item_is_judged_alike_by_the_api_cli_dashboard_and_fold(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = Settings.load({**os.environ, "SLO_DATA_DIR": str(data)})
    alert = Alert(
        source="alertmanager", status="firing", service="shop", fingerprint="doors",
        title="Checkout errors", dedup_key="am:doors", starts_at=T0, severity="SEV2",
    )  # fmt: skip
    publish_alert(settings, alert, T0 + dt.timedelta(minutes=1))
    iid = str(json.loads(slo(data, "incidents", "list", "--json").stdout)[0]["id"])

    # The dashboard: accepted with the default filled in; refused before anything is appended.
    before = inbox_count(data)
    sent = actions.send_command(data, "action_item", iid, DORA, item("via dashboard"))
    with pytest.raises(ValueError) as refused:
        actions.send_command(data, "action_item", iid, DORA, item("bad via dashboard", "urgent"))
    assert str(refused.value) == API_FORM
    inbox = Inbox(data)
    rows = inbox.read_since(0)
    stored = {r.dedup_key: r.body for r in rows}
    assert stored[sent.dedup_key]["args"] == {**item("via dashboard"), "priority": "P2"}
    assert inbox.count() == before + 1
    # The fold: two commands as stored by something that skipped every door.
    raw = [
        Command("action_item", iid, "fred", "api", "raw:ok", T0 + dt.timedelta(hours=1), item("via fold")),
        Command("action_item", iid, "fred", "api", "raw:bad", T0 + dt.timedelta(hours=1),
                item("bad via fold", "urgent")),
    ]  # fmt: skip
    inbox.append([Entry(c.dedup_key, "command", c.source, c.to_json()) for c in raw])
    inbox.close()

    # The HTTP API of a real service, whose worker folds everything above too.
    # Commands through the API need a personal token naming who sends them (issue 15): erin, a responder.
    erin = "erin-personal-token-0123456789"
    tokens = f'tokens:\n  "{erin}": {{name: erin, role: responder}}\n'
    as_erin = {"authorization": f"Bearer {erin}"}
    with running_service(tmp_path, env={"SLO_CYCLE_SECONDS": "1", "SLO_API_TOKENS": tokens}) as svc:
        path = f"/api/incidents/{iid}/commands"
        ok_body = {"command": "action_item", "args": item("via api")}
        ok_status, ok = svc.post(path, json.dumps(ok_body).encode(), as_erin)
        assert ok_status == 202, ok
        assert ok["command"]["args"] == {**item("via api"), "priority": "P2"}
        count = svc.health()["inbox"]["count"]
        bad_body = {"command": "action_item", "args": item("bad via api", "urgent")}
        bad_status, bad = svc.post(path, json.dumps(bad_body).encode(), as_erin)
        assert (bad_status, bad["detail"]) == (400, API_FORM)
        assert svc.health()["inbox"]["count"] == count  # nothing written
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(show(data, iid)["action_items"]) < 3:
            time.sleep(0.5)

    # The CLI, applying the step itself now that no service holds the store.
    done = slo(data, "incidents", "action-item", iid, "--title", "via cli", "--owner", "@shop-team",
               "--due", DUE, "--json")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    count = inbox_count(data)
    done = slo(data, "incidents", "action-item", iid, "--title", "bad via cli", "--owner", "@shop-team",
               "--priority", "urgent", "--due", DUE)  # fmt: skip
    assert done.returncode == 1
    assert ARG_FORM in done.stderr
    assert inbox_count(data) == count  # nothing written

    detail = show(data, iid)
    items = sorted((a["title"], a["priority"], a["due_date"]) for a in detail["action_items"])
    assert items == [(f"via {door}", "P2", DUE) for door in ("api", "cli", "dashboard", "fold")]
    rejected = [e["message"] for e in detail["timeline"] if e["kind"] == "command_rejected"]
    assert rejected == [f"action_item rejected: {ARG_FORM}"]  # the raw row; the doors stored nothing
