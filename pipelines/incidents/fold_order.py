"""Which inbox rows the fold takes ahead of a backlog (issue 13): pure, over `inbox.Head`s.

A storm of low-severity alerts must not delay a page. The service's fold therefore starts each cycle
with the urgent rows (firing SEV1/SEV2 alerts) after its cursor, and only then goes on with the backlog
in `seq` order. Folding a row early is only safe when no earlier, not yet folded row could change what
it does, so an urgent row comes with every earlier row it depends on, transitively:

- an alert of the same service with the same fingerprint (it would have opened the incident this one
  joins, or it lands on the same incident's timeline);
- an alert of the same service where either has no SLO or both name the same SLO (alerts of one
  service join an open incident through a shared SLO; an alert without an SLO label is linked to the
  service's SLOs that were burning at the time);
- a command on an incident of the same service (an earlier `resolve` decides whether the alert joins
  that incident or opens a new one), and then every earlier row of that service;
- a row whose service cannot be told (an import, a command naming an incident not folded yet, e.g. a
  PagerDuty event whose alert waits in the backlog): then every earlier row.

So within each group of rows that can interact, the fold order is still the `seq` order; only rows that
cannot interact with anything urgent wait. The set is closed under "an earlier row it depends on", and
so is any `seq`-prefix of it, which is what lets the fold stop it at a time budget and go on next cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pipelines.inbox import Head


@dataclass
class _Members:
    """What the rows taken so far make an earlier row depend on."""

    fingerprints: set[tuple[str, str]] = field(default_factory=set)
    slos: set[tuple[str, str]] = field(default_factory=set)
    services: set[str] = field(default_factory=set)
    without_slo: set[str] = field(default_factory=set)  # services with a member alert that names no SLO
    commanded: set[str] = field(default_factory=set)  # services with a member command: all rows count
    everything: bool = False  # a member whose service is unknown: every earlier row counts

    def needs(self, h: Head, service: str | None) -> bool:
        if self.everything:
            return True
        if service is None:  # unknown: it may touch whatever a member touches
            return bool(self.services)
        if h.kind != "alert":  # a command on one of our incidents
            return service in self.services
        if service in self.commanded:
            return True
        if h.fingerprint is not None and (service, h.fingerprint) in self.fingerprints:
            return True
        if service not in self.services:
            return False
        return not h.slo or service in self.without_slo or (service, h.slo) in self.slos

    def add(self, h: Head, service: str | None) -> None:
        if service is None:
            self.everything = True
            return
        self.services.add(service)
        if h.kind != "alert":
            self.commanded.add(service)
            return
        if h.fingerprint is not None:
            self.fingerprints.add((service, h.fingerprint))
        if not h.slo:  # an empty label names no SLO, as the fold reads it
            self.without_slo.add(service)
        else:
            self.slos.add((service, h.slo))


def closure(heads: Sequence[Head], service_of: Callable[[Head], str | None]) -> list[int]:
    """The seqs of the urgent heads and of every earlier head they depend on (transitively), in order.

    `service_of` gives a row's service: an alert's own, a command's incident's (None when unknown).
    """
    members = _Members()
    taken: list[int] = []
    for h in reversed(heads):  # a row depends only on earlier rows: one pass from the newest
        service = service_of(h)
        if h.urgent or members.needs(h, service):
            members.add(h, service)
            taken.append(h.seq)
    return taken[::-1]


def ahead_of_backlog(
    heads: Sequence[Head], service_of: Callable[[Head], str | None], limit: int
) -> list[int]:
    """The rows to fold before the backlog: `closure` of the urgent heads, at most `limit` rows.

    When the closure of every urgent head is larger, or takes an import along (an import folded ahead
    would be folded again in seq order), the newer urgent heads are left out (halving until it fits), so
    the oldest pages still go first; an empty list when even the first does not fit (it is then folded
    in `seq` order with the backlog).
    """
    kinds = {h.seq: h.kind for h in heads}
    urgent = [i for i, h in enumerate(heads) if h.urgent]
    while urgent:
        taken = closure(heads[: urgent[-1] + 1], service_of)
        # An import is recognised as folded only in seq order: one taken ahead would be folded again.
        if len(taken) <= limit and not any(kinds[seq] == "import" for seq in taken):
            return taken
        urgent = urgent[: len(urgent) // 2]
    return []
