"""Done-when of the incident flow: a real Prometheus evaluating the rules from `slo rules` and a real
Alertmanager routing to `slo serve` produce an incident with a triage and a route in
`slo incidents list --json` within seconds.

The pieces are those of test_rules_prometheus.py (a scrape target in this process whose errors jump
from 0 to 100 %, Prometheus scraping and evaluating every second, the README guide's alertmanager.yml
with the bearer-token file), but the receiver is the real service: `slo serve` as a subprocess with
SLO_INGEST_TOKEN, a worker cycling every second, the spec the rules came from in SLO_SPECS_DIR, and no
ANTHROPIC_API_KEY, so the rule-based classifier triages. The test prints how many seconds after the
error jump the alert fired in Prometheus, was accepted into the service's inbox, and was listed as a
triaged and routed incident by the CLI.

The jump fires every alert of the SLO at once (both page pairs, both ticket pairs, budget exhausted);
they are one problem, so one incident holds them all, and since it holds a page alert it is SEV2 or
worse before and after the rule-based triage (DESIGN §2), whichever alert happened to open it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from pipelines.incidents.contract import SEVERITIES
from tests.support.prometheus_server import stop
from tests.support.realparts import free_port, require_binary
from tests.support.rules_stack import (
    SPEC,
    Target,
    get,
    guide_alertmanager_yml,
    page_alerts,
    serve,
    wait,
)
from tests.support.service import ROOT, running_service

pytestmark = pytest.mark.integration

TOKEN = "e2e-ingest-token"
DEADLINE = 90.0  # seconds from the error jump to a triaged, routed incident ("within seconds")
# Nothing outbound and no model: the rule-based classifier decides, escalation is only recorded.
QUIET = {
    "ANTHROPIC_API_KEY": "",
    "ANTHROPIC_BASE_URL": "",
    "PROMETHEUS_URL": "",  # the alert must come through Alertmanager, not the engine's own evaluation
    "PAGERDUTY_ROUTING_KEY": "",
    "SLACK_WEBHOOK_URL": "",
}


def _cli(data_dir: Path, *args: str) -> Any:
    """`slo <args> --json` against the service's published snapshot, parsed."""
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args, "--json"],
        cwd=ROOT,
        env={**os.environ, **QUIET, "SLO_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"slo {' '.join(args)} exited {done.returncode}: {done.stderr}"
    return json.loads(done.stdout)


def _routed_alertmanager_incidents(data_dir: Path) -> list[dict[str, Any]]:
    return [
        i
        for i in _cli(data_dir, "incidents", "list", "--service", "shop")
        if i["source"] == "alertmanager" and i["triage"] is not None and i["route"] is not None
    ]


def _holding(data_dir: Path, incident_id: str, fingerprint: str) -> dict[str, Any] | None:
    """`slo incidents show ID --json`, once the incident holds the alert with this fingerprint."""
    detail: dict[str, Any] = _cli(data_dir, "incidents", "show", incident_id)
    return detail if fingerprint in {a["fingerprint"] for a in detail["alerts"]} else None


def test_prometheus_rules_and_alertmanager_open_a_triaged_routed_incident_in_the_service(
    tmp_path: Path,
) -> None:
    prometheus = require_binary("prometheus")
    alertmanager = require_binary("prometheus-alertmanager", "alertmanager")
    specs = tmp_path / "specs"  # start_service's SLO_SPECS_DIR
    specs.mkdir()
    (specs / "shop.yaml").write_text(SPEC)
    rules = tmp_path / "rules.yaml"
    made = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "rules", str(specs), "-o", str(rules)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr

    target = Target()
    token = tmp_path / "slo_ingest_token"
    token.write_text(f"{TOKEN}\n")
    env = {**QUIET, "SLO_CYCLE_SECONDS": "1", "SLO_SPECS_DIR": str(specs)}
    with running_service(tmp_path, token=TOKEN, env=env) as svc:
        scrape = serve(target)
        am_port, port = free_port(), free_port()
        (tmp_path / "alertmanager.yml").write_text(guide_alertmanager_yml(svc.port, token))
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"rule_files: [{rules}]\n"
            f"alerting: {{alertmanagers: [{{static_configs: [{{targets: ['127.0.0.1:{am_port}']}}]}}]}}\n"
            "scrape_configs:\n"
            "  - job_name: shop\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{scrape.server_address[1]}']}}]\n"
        )
        api, am_api = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{am_port}"
        logs = {name: (tmp_path / f"{name}.log").open("w") for name in ("prometheus", "alertmanager")}
        processes = [
            subprocess.Popen(
                [
                    alertmanager,
                    f"--config.file={tmp_path / 'alertmanager.yml'}",
                    f"--storage.path={tmp_path / 'am'}",
                    f"--web.listen-address=127.0.0.1:{am_port}",
                    "--cluster.listen-address=",  # no gossip port: a single Alertmanager, loopback only
                ],
                stdout=logs["alertmanager"],
                stderr=subprocess.STDOUT,
            ),
            subprocess.Popen(
                [
                    prometheus,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'prometheus'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=logs["prometheus"],
                stderr=subprocess.STDOUT,
            ),
        ]
        passed = False
        try:
            for url in (f"{api}/-/ready", f"{am_api}/-/ready"):
                wait(
                    lambda url=url: urllib.request.urlopen(url, timeout=2).status == 200, 30, f"{url} ready"
                )
            wait(
                lambda: (
                    len(get(f"{api}/api/v1/query?query=shop_requests_total")["data"]["result"]) == 2
                    and time.monotonic() - target.started > 5
                ),
                30,
                "the first scrapes",
            )
            assert page_alerts(api) == [], "a page alert fired while every request succeeded"
            assert _cli(svc.data_dir, "incidents", "list") == [], "an incident before any error"

            target.fail()
            jump = target.failing_since or 0.0
            firing = wait(lambda: page_alerts(api), DEADLINE, "SLOBurnRateHigh{severity='page'} to fire")
            fired_after = time.monotonic() - jump
            wait(lambda: svc.health()["inbox"]["count"] >= 1, DEADLINE, "the alert in the service's inbox")
            accepted_after = time.monotonic() - jump
            (incident,) = wait(
                lambda: _routed_alertmanager_incidents(svc.data_dir),
                max(1.0, DEADLINE - accepted_after),
                "a triaged, routed incident in `slo incidents list --json`",
            )
            listed_after = time.monotonic() - jump
            print(
                f"\nafter the errors jumped to 100%: page alert firing in Prometheus {fired_after:.1f}s, "
                f"accepted into the slo serve inbox {accepted_after:.1f}s, incident {incident['id']} "
                f"triaged ({incident['triage']['method']} {incident['triage']['severity']}) and routed "
                f"({incident['route']}) in `slo incidents list --json` {listed_after:.1f}s"
            )
            assert listed_after < DEADLINE

            # The incident is the rules' alerts: Alertmanager's fingerprints, rule labels, the spec's SLO.
            labels = firing[0]["labels"]
            assert (labels["service"], labels["slo"], labels["severity"]) == (
                "shop",
                "shop/availability",
                "page",
            )
            sent = {a["fingerprint"]: a["labels"] for a in get(f"{am_api}/api/v2/alerts")}
            (page_fp,) = [fp for fp, am_labels in sent.items() if am_labels == labels]
            assert incident["fingerprint"] in sent
            assert (incident["service"], incident["slo_id"], incident["status"]) == (
                "shop",
                "shop/availability",
                "triggered",
            )
            # Every alert of the error jump (pages, tickets, budget exhausted) is one problem on one SLO:
            # one incident, holding the page alert with its pre-triage severity, page → SEV2 (DESIGN §2).
            detail = wait(
                lambda: _holding(svc.data_dir, incident["id"], page_fp), 30, "the page alert on the incident"
            )
            assert [i["id"] for i in _cli(svc.data_dir, "incidents", "list")] == [incident["id"]]
            received = {a["fingerprint"]: a for a in detail["alerts"]}
            assert set(received) <= set(sent)
            page = received[page_fp]
            assert (page["source"], page["status"], page["severity"]) == ("alertmanager", "firing", "SEV2")
            print(
                "alerts on the incident:",
                sorted((a["severity"], a["title"]) for a in detail["alerts"]),
            )

            timeline = detail["timeline"]
            kinds = [e["kind"] for e in timeline]
            print("timeline:", [(e["kind"], e["message"]) for e in timeline])
            assert {"alert", "triage", "route"} <= set(kinds), kinds
            assert kinds.index("alert") < kinds.index("triage") < kinds.index("route")
            alert_entries = [e for e in timeline if e["kind"] in ("alert", "alert_joined")]
            assert {e["data"]["fingerprint"] for e in alert_entries} == set(received)
            opened = alert_entries[0]
            assert opened["kind"] == "alert" and opened["source"] == "alertmanager"
            assert opened["data"]["labels"] == sent[incident["fingerprint"]]
            assert any(
                e["data"]["fingerprint"] == page_fp and e["message"].endswith("(SEV2)") for e in alert_entries
            )
            triaged = next(e for e in timeline if e["kind"] == "triage")
            routed = next(e for e in timeline if e["kind"] == "route")
            assert triaged["data"]["method"] == "rules" and triaged["data"]["model"] is None
            assert routed["data"]["route"] == incident["route"]

            # No key: the rule-based classifier decides and the incident escalates (seed 000's fallback).
            assert incident["triage"]["method"] == "rules" and incident["triage"]["model"] is None
            assert incident["triage"]["severity"] in SEVERITIES
            assert incident["route"] == "escalate" and "rule-based" in routed["message"]

            health = svc.health()
            print("service ingest counters:", health["ingest"])
            assert health["ingest"].get("401", 0) == 0  # Alertmanager sent the token from the file
            # A page alert is on the incident, so it is SEV2 or worse before and after the rules triage
            # (DESIGN §2: page → SEV2 until triaged; rules: page burn → SEV2, source SEV1 never lowered).
            assert incident["triage"]["severity"] in ("SEV1", "SEV2"), (
                f"{incident['id']} holds a page alert (SEV2) but was triaged "
                f"{incident['triage']['severity']}: the incident kept the severity of the alert that "
                f"opened it ({opened['message']}); a joining page alert does not raise it"
            )
            assert incident["severity"] == incident["triage"]["severity"]
            passed = True
        finally:
            for process in processes:
                stop(process)
            scrape.shutdown()
            scrape.server_close()
            for log in logs.values():
                log.close()
            if not passed:
                for name in logs:
                    print(f"--- {name} log ---\n" + (tmp_path / f"{name}.log").read_text()[-3000:])
