"""Seed 002's severity triggers as pure rules (issue 17, item 4): what triage finds in an alert's text,
what each trigger makes of each severity, and when a scope has doubled. Every expected value is worked
out by hand from the seed: data integrity → SEV1; customer-reported → at least SEV2; scope doubled →
one level up; a rule never lowers a severity."""

from __future__ import annotations

import pytest

from pipelines.incidents import severity_rules
from pipelines.incidents.severity_rules import Upgrade


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Data integrity: orders table checksum mismatch", {"data_integrity": "Data integrity"}),
        ("payments rows corrupted after the migration", {"data_integrity": "corrupted"}),
        ("Nightly integrity check failed on ledger", {"data_integrity": "integrity check"}),
        ("possible data-loss in the export job", {"data_integrity": "data-loss"}),
        ("Checkout errors reported by customers", {"customer_reported": "reported by customers"}),
        ("Customer-reported: invoices missing", {"customer_reported": "Customer-reported"}),
        ('{"labels": {"reported_by": "customer"}}', {"customer_reported": '"reported_by": "customer"'}),
        (
            "Customer complaint: data corruption in exports",
            {"data_integrity": "data corruption", "customer_reported": "Customer complaint"},
        ),
        ("Checkout latency p99 above 400ms", {}),
        ("Integrity of the build cache", {}),  # "integrity" alone is no data-integrity concern
        ("customers page slow", {}),
    ],
)
def test_triggers_found_in_alert_text(text: str, found: dict[str, str]) -> None:
    assert severity_rules.detect(text) == found


@pytest.mark.parametrize(
    ("severity", "trigger", "after"),
    [
        ("SEV3", "data_integrity", "SEV1"),
        ("SEV4", "data_integrity", "SEV1"),
        ("SEV1", "data_integrity", "SEV1"),
        ("SEV4", "customer_reported", "SEV2"),
        ("SEV3", "customer_reported", "SEV2"),
        ("SEV2", "customer_reported", "SEV2"),
        ("SEV1", "customer_reported", "SEV1"),  # "at least SEV2" never lowers a SEV1
        ("SEV4", "scope_doubled", "SEV3"),
        ("SEV2", "scope_doubled", "SEV1"),
        ("SEV1", "scope_doubled", "SEV1"),
        (None, "scope_doubled", "SEV2"),  # unclassified counts as SEV3
        (None, "customer_reported", "SEV2"),
    ],
)
def test_each_trigger_on_each_severity(severity: str | None, trigger: str, after: str) -> None:
    assert severity_rules.raised(severity, trigger) == after


def test_triggers_apply_in_turn_and_only_real_upgrades_are_reported() -> None:
    final, upgrades = severity_rules.apply(
        "SEV4", {"customer_reported": "a ticket", "data_integrity": "'corrupted' in the alert"}
    )
    assert final == "SEV1"
    assert upgrades == [
        Upgrade("customer_reported", "SEV4", "SEV2", "a ticket"),
        Upgrade("data_integrity", "SEV2", "SEV1", "'corrupted' in the alert"),
    ]
    assert upgrades[1].message() == (
        "severity SEV2 → SEV1: any data integrity concern → SEV1 ('corrupted' in the alert)"
    )
    assert severity_rules.apply("SEV1", {"data_integrity": "x", "scope_doubled": "y"}) == ("SEV1", [])
    assert severity_rules.apply("SEV2", {}) == ("SEV2", [])


@pytest.mark.parametrize(
    ("given", "trigger"),
    [
        ("data-integrity", "data_integrity"),
        ("Data integrity", "data_integrity"),
        ("customer_reported", "customer_reported"),
        ("scope-doubled", "scope_doubled"),
        ("outage", None),
        (None, None),
    ],
)
def test_trigger_names(given: object, trigger: str | None) -> None:
    assert severity_rules.canonical_trigger(given) == trigger


@pytest.mark.parametrize(
    ("baseline", "scope", "doubled"),
    [(1, 2, True), (2, 3, False), (2, 4, True), (3, 5, False), (3, 6, True), (0, 2, True), (1, 1, False)],
)
def test_scope_doubled(baseline: int, scope: int, doubled: bool) -> None:
    assert severity_rules.scope_doubled(baseline, scope) is doubled


def test_most_severe() -> None:
    assert severity_rules.most_severe(["SEV3", None, "SEV2", "SEV4"]) == "SEV2"
    assert severity_rules.most_severe([None]) is None


def test_an_unknown_trigger_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown severity trigger 'outage'"):
        severity_rules.raised("SEV3", "outage")
