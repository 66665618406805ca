"""Hostile outside text through the real pipeline and the real `slo` CLI (subprocesses): shown as text.

One incident opened by an alert whose title carries a remote image, a link, a Streamlit colour directive
and terminal escape sequences; a root cause, an action item and an actor just as hostile, recorded with
`slo incidents …`. Then: `incidents list/show` print no ESC, `show --json` keeps every character
(JSON-escaped), the generated post-mortem and `slo report --format md` carry the Markdown escaped.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path

import pytest

from pipelines.config import Settings
from pipelines.incidents.contract import Alert
from pipelines.outside_text import JOINER
from tests.support.cli import os_user, slo
from tests.support.incident_rows import publish_alert

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2026, 6, 1, 10, 0)
ESC = "\x1b"
TITLE = f":red[RESOLVED] <img src=http://evil.test/t.png> {ESC}[2J{ESC}]8;;http://evil.test/\x07click{ESC}]8;;\x07"
SERVICE = "shop_[x](http://evil.test/s)"
ROOT_CAUSE = f"![pixel](http://evil.test/rc.png) {ESC}[31mred{ESC}[0m\rfake line"
ACTION_TITLE = "[fix](javascript:alert(1)) | cell"
ACTOR = f"mallory{ESC}]0;owned\x07"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("outside") / "data"
    settings = Settings.load({**os.environ, "SLO_DATA_DIR": str(data)})
    alert = Alert(
        source="alertmanager", status="firing", service=SERVICE, fingerprint="HostileTitle",
        title=TITLE, dedup_key="am:hostile", starts_at=T0, severity="SEV2",
    )  # fmt: skip
    publish_alert(settings, alert, T0 + dt.timedelta(minutes=1))
    iid = json.loads(slo(data, "incidents", "list", "--json").stdout)[0]["id"]
    for step in (
        ["ack", iid],
        ["root-cause", iid, "--category", "deploy", "--text", ROOT_CAUSE],
        ["action-item", iid, "--title", ACTION_TITLE, "--owner", ACTOR, "--priority", "P2",
         "--due", "2026-06-15"],
        ["resolve", iid],
    ):  # fmt: skip
        done = slo(data, "incidents", *step, env={"LOGNAME": ACTOR, "USER": ACTOR})  # ignored
        assert done.returncode == 0, (step, done.stdout, done.stderr)
        assert ESC not in done.stdout + done.stderr
    return data


def incident_id(data_dir: Path) -> str:
    return str(json.loads(slo(data_dir, "incidents", "list", "--json").stdout)[0]["id"])


def test_list_prints_the_title_as_text_without_escape_sequences(data_dir: Path) -> None:
    done = slo(data_dir, "incidents", "list")
    assert done.returncode == 0, done.stderr
    assert ESC not in done.stdout and "\x07" not in done.stdout and "\r" not in done.stdout
    # The visible text is all there; only the sequences are gone (the title is cut at 70 characters).
    assert ":red[RESOLVED] <img src=http://evil.test/t.png> click" in done.stdout
    assert SERVICE in done.stdout


def test_show_prints_every_outside_field_without_escape_sequences(data_dir: Path) -> None:
    done = slo(data_dir, "incidents", "show", incident_id(data_dir))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for bad in (ESC, "\x07", "\r"):
        assert bad not in out, repr(bad)
    assert f"{SERVICE}: :red[RESOLVED] <img src=http://evil.test/t.png> click" in out
    assert "root cause (deploy): ![pixel](http://evil.test/rc.png) red fake line" in out
    assert "[fix](javascript:alert(1)) | cell → mallory0;owned P2" not in out  # OSC removed whole:
    assert "[fix](javascript:alert(1)) | cell → mallory P2 due 2026-06-15" in out
    assert f"[{os_user()}]" in out  # the actor on the timeline: the effective uid's login, not LOGNAME


def test_show_json_keeps_the_text_exactly(data_dir: Path) -> None:
    done = slo(data_dir, "incidents", "show", incident_id(data_dir), "--json")
    assert done.returncode == 0, done.stderr
    assert ESC not in done.stdout  # JSON-escaped as \u001b …
    assert "\\u001b[2J" in done.stdout
    detail = json.loads(done.stdout)
    assert (detail["title"], detail["service"], detail["root_cause"]) == (TITLE, SERVICE, ROOT_CAUSE)
    assert detail["action_items"][0]["title"] == ACTION_TITLE
    assert {e["actor"] for e in detail["timeline"] if e["actor"]} == {os_user()}


def test_postmortem_carries_the_outside_text_escaped(data_dir: Path) -> None:
    done = slo(data_dir, "incidents", "show", incident_id(data_dir), "--document", "postmortem")
    assert done.returncode == 0, done.stderr
    doc = done.stdout
    assert ESC not in doc
    assert f"# Post-Mortem: :{JOINER}red\\[RESOLVED\\] \\<img src=http:{JOINER}//evil.test/t.png>" in doc
    assert f"!\\[pixel\\](http:{JOINER}//evil.test/rc.png) red fake line" in doc
    # The action item is one table row: its | escaped, its link broken.
    assert f"| 1 | \\[fix\\](javascript:{JOINER}alert(1)) \\| cell | mallory | P2 | 2026-06-15 |" in doc
    assert re.search(r"(?<!\\)<img", doc) is None  # every <img is \<img: text, not HTML
    for raw in ("http://", "javascript:alert", ":red["):  # every scheme and directive broken
        assert raw not in doc, raw
    assert re.search(r"(?<!\\)[\[\]]\(", doc) is None  # no unescaped ]( : no link or image


def test_markdown_report_escapes_the_service(data_dir: Path) -> None:
    done = slo(data_dir, "report", "quarterly", "--quarter", "2026-Q2", "--format", "md")
    assert done.returncode == 0, done.stderr
    md = done.stdout
    assert f"| shop\\_\\[x\\](http:{JOINER}//evil.test/s) | 1 |" in md
    assert "](http://" not in md and ESC not in md
