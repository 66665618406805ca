"""On-call schedules and escalation policies (issue 17, item 1; seed 002): who is paged at each tier.

Pure but for `load_oncall` reading its file. The file (YAML, named by `SLO_ONCALL_FILE`) has the shape
of PagerDuty's schedules and escalation policies:

    people:
      alice: {email: alice@example.com}
      erin:  {email: erin@example.com, routing_key_env: ERIN_ROUTING_KEY}   # her own service
    schedules:
      backend-primary:
        layers:                              # one after another: no gap, no overlap
          - start: 2026-11-02T10:00:00Z      # the first hand-off (UTC)
            rotation_turn_length: 1w         # 30m, 12h, 1d, 1w, or seconds
            users: [alice, bob, carol, dan]  # on call in turn; ends open unless `end:` is given
    policies:
      default:                               # any service without its own policy
        tiers:
          - {target: {schedule: backend-primary}, timeout: 5m}
          - {target: {schedule: backend-secondary}, timeout: 10m}
          - {target: {person: erin}, timeout: 15m}
          - {target: {routing_key_env: LEADERSHIP_ROUTING_KEY}}   # the last tier: timeout 0
      checkout-api: {tiers: [...]}

A tier's target is a schedule (whoever is on call when it is paged), a person, or a PagerDuty routing
key (the name of the environment variable holding it, ending in ROUTING_KEY: routing keys are secrets,
kept out of the file and scrubbed from stored text). A person without `routing_key_env` is paged
through `PAGERDUTY_ROUTING_KEY`, named in the event. Each tier pages with its own dedup key
(`INC-0042`, then `INC-0042-tier2`…), so PagerDuty opens a new alert for it instead of dropping it as
a repeat of tier 1's.

Without a policy for a service (and no `default`) the policy is seed 002's: on-call-primary 5 min,
on-call-secondary 10 min, engineering-manager 15 min, vp-engineering (all through PAGERDUTY_ROUTING_KEY).
With no on-call file at all the escalation timers keep the severity's response time (timers.py).

Every problem of a file is reported at once (`OnCallError`), each as `<file>: <field path>: <problem>`;
a file with a problem is never used in part.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from pipelines.errors import ConfigError

if TYPE_CHECKING:
    from pipelines.config import Settings

log = logging.getLogger(__name__)

_DURATION = re.compile(r"^(\d+)\s*(s|m|min|h|d|w)$")
_UNIT_S = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,100}ROUTING_KEY$")  # Settings.routing_keys holds these
_NAME = re.compile(r"^[^\x00-\x1f\x7f]{1,100}$")  # printable: names land on timelines and in Slack
WEEK = dt.timedelta(days=7)


class OnCallError(ConfigError):
    """An on-call file that cannot be used; `problems` lists each as `<file>: <field>: <problem>`."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class Person:
    name: str
    email: str | None = None
    routing_key_env: str | None = None


@dataclass(frozen=True)
class Layer:
    """One rotation: `users` take turns of `turn` each, the first from `rotation_start`, while the
    layer is in effect, from `start` until `end` (None: open)."""

    start: dt.datetime
    turn: dt.timedelta
    users: tuple[str, ...]
    end: dt.datetime | None = None
    rotation_start: dt.datetime | None = None
    name: str = ""

    def covers(self, at: dt.datetime) -> bool:
        return self.start <= at and (self.end is None or at < self.end)

    def on_call(self, at: dt.datetime) -> str:
        anchor = self.rotation_start or self.start
        turns = (at - anchor) // self.turn
        return self.users[turns % len(self.users)]


@dataclass(frozen=True)
class Schedule:
    name: str
    layers: tuple[Layer, ...]

    def on_call(self, at: dt.datetime) -> str | None:
        """Who is on call at `at` (naive UTC), or None before the first layer starts / after the last ends."""
        for layer in self.layers:
            if layer.covers(at):
                return layer.on_call(at)
        return None

    def shifts(self, start: dt.datetime, end: dt.datetime) -> list[tuple[str, dt.datetime, dt.datetime]]:
        """(person, from, to) for every turn overlapping [start, end), cut to it, in time order."""
        out: list[tuple[str, dt.datetime, dt.datetime]] = []
        for layer in self.layers:
            lo = max(start, layer.start)
            hi = min(end, layer.end) if layer.end is not None else end
            if lo >= hi:
                continue
            anchor = layer.rotation_start or layer.start
            t = anchor + ((lo - anchor) // layer.turn) * layer.turn
            while t < hi:
                nxt = t + layer.turn
                out.append((layer.on_call(t), max(t, lo), min(nxt, hi)))
                t = nxt
        return sorted(out, key=lambda s: s[1])


@dataclass(frozen=True)
class Target:
    kind: str  # schedule | person | routing_key_env | role (the default policy's names)
    value: str

    def label(self) -> str:
        return self.value if self.kind in ("role", "person") else f"{self.kind} {self.value}"


@dataclass(frozen=True)
class Tier:
    target: Target
    timeout: dt.timedelta


@dataclass(frozen=True)
class Policy:
    name: str
    tiers: tuple[Tier, ...]

    def deadlines(self, escalated_at: dt.datetime) -> list[tuple[int, dt.datetime]]:
        """(tier reached, when) for tier 2 onwards: each tier's timeout after the previous tier was paged."""
        out = []
        at = escalated_at
        for n, tier in enumerate(self.tiers[:-1], start=1):
            at = at + tier.timeout
            out.append((n, at))
        return out


@dataclass(frozen=True)
class PageTarget:
    """Whom tier `tier` (0-based) of an incident pages, and how."""

    tier: int
    label: str  # what the tier is ("schedule backend-primary", "erin", "on-call-primary")
    person: str | None  # who, when a schedule or person decides it
    routing_key_env: str  # the environment variable with the routing key
    dedup_key: str

    def describe(self) -> str:
        who = f"{self.label}: {self.person}" if self.person and self.person != self.label else self.label
        return f"tier {self.tier + 1} ({who})"


# seed 002's escalation policy, level 1 first: primary 5 min, secondary 10 min, manager 15 min, VP 0.
DEFAULT_POLICY = Policy(
    "default",
    (
        Tier(Target("role", "on-call-primary"), dt.timedelta(minutes=5)),
        Tier(Target("role", "on-call-secondary"), dt.timedelta(minutes=10)),
        Tier(Target("role", "engineering-manager"), dt.timedelta(minutes=15)),
        Tier(Target("role", "vp-engineering"), dt.timedelta(0)),
    ),
)
DEFAULT_ROUTING_KEY_ENV = "PAGERDUTY_ROUTING_KEY"


@dataclass(frozen=True)
class OnCall:
    people: Mapping[str, Person] = field(default_factory=dict)
    schedules: Mapping[str, Schedule] = field(default_factory=dict)
    policies: Mapping[str, Policy] = field(default_factory=dict)
    source: str = ""

    def policy_for(self, service: str) -> Policy:
        return self.policies.get(service) or self.policies.get("default") or DEFAULT_POLICY

    def page_target(self, service: str, incident_id: str, tier: int, at: dt.datetime) -> PageTarget:
        """Whom tier `tier` (0-based, past the last: the last) of `service`'s policy pages at `at`."""
        tiers = self.policy_for(service).tiers
        n = max(0, min(tier, len(tiers) - 1))
        target = tiers[n].target
        person: str | None = None
        key_env = DEFAULT_ROUTING_KEY_ENV
        if target.kind == "schedule":
            person = self.schedules[target.value].on_call(at)
        elif target.kind == "person":
            person = target.value
        elif target.kind == "routing_key_env":
            key_env = target.value
        if person is not None and person in self.people and self.people[person].routing_key_env:
            key_env = str(self.people[person].routing_key_env)
        return PageTarget(n, target.label(), person, key_env, dedup_key(incident_id, n))


def dedup_key(incident_id: str, tier: int) -> str:
    """Tier 1 keeps the incident id (what every page used before tiers); each later tier its own key."""
    return incident_id if tier == 0 else f"{incident_id}-tier{tier + 1}"


def default_page_target(incident_id: str, tier: int) -> PageTarget:
    """Without an on-call file: the default policy's tier names, all through PAGERDUTY_ROUTING_KEY."""
    return OnCall().page_target("", incident_id, tier, dt.datetime(1970, 1, 1))


# The last good file per path, by (mtime, size): a file that turns bad keeps the last good one in use,
# so a typo never stops the paging.
_LOADED: dict[Path, tuple[tuple[int, int], OnCall]] = {}


def configured(settings: Settings) -> OnCall | None:
    """The on-call file of `settings` (None: SLO_ONCALL_FILE is not set), read again when it changes.

    A file that cannot be used raises OnCallError the first time; once one version was good, a later bad
    version logs its problems and the good one stays in use (`slo serve` refuses to start on a bad file)."""
    path = settings.oncall_file
    if path is None:
        return None
    try:
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = (-1, -1)
    cached = _LOADED.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        loaded = load_oncall(path)
    except OnCallError as exc:
        if cached is None:
            raise
        log.error("on-call file unusable, the previous version stays in use: %s", exc)
        _LOADED[path] = (stamp, cached[1])
        return cached[1]
    _LOADED[path] = (stamp, loaded)
    return loaded


def configured_or_default(settings: Settings) -> OnCall | None:
    """`configured`, but a file that was never good is logged and paging goes on as without a file (the
    default policy through PAGERDUTY_ROUTING_KEY): a typo must not silence every page. `slo serve`
    refuses such a file at start; this covers the one-shot CLI runs."""
    try:
        return configured(settings)
    except OnCallError as exc:
        log.error("on-call file unusable, paging with the default policy: %s", exc)
        return None


# --- reading the file --------------------------------------------------------------------------------


def load_oncall(path: Path) -> OnCall:
    """The on-call file at `path`; OnCallError listing every problem (the file named in each)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise OnCallError([f"{path}: cannot be read: {exc.strerror or exc}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise OnCallError([f"{path}: not YAML: {str(exc).splitlines()[0]}"]) from None
    return parse_oncall(data, str(path))


def parse_oncall(data: Any, source: str) -> OnCall:
    """An `OnCall` from the file's parsed YAML; OnCallError with every problem, each naming its field."""
    problems: list[str] = []

    def bad(where: str, message: str) -> None:
        problems.append(f"{source}: {where}: {message}")

    if not isinstance(data, dict):
        raise OnCallError([f"{source}: expected a mapping with people, schedules and policies"])
    for key in data:
        if key not in ("people", "schedules", "policies"):
            bad(str(key), "unknown key; expected people, schedules, policies")
    people = _people(data.get("people"), bad)
    schedules = _schedules(data.get("schedules"), people, bad)
    declared = set(data["schedules"]) if isinstance(data.get("schedules"), dict) else set()
    policies = _policies(data.get("policies"), people, schedules, declared, bad)
    if problems:
        raise OnCallError(problems)
    return OnCall(people, schedules, policies, source)


def _mapping(value: Any, where: str, bad: Any) -> dict[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        bad(where, f"expected a mapping, got {type(value).__name__}")
        return {}
    return value


def _people(raw: Any, bad: Any) -> dict[str, Person]:
    out: dict[str, Person] = {}
    for name, spec in _mapping(raw, "people", bad).items():
        where = f"people.{name}"
        if not isinstance(name, str) or not _NAME.match(name):
            bad(where, "a name is 1 to 100 printable characters")
            continue
        spec = _mapping(spec, where, bad)
        for key in spec:
            if key not in ("email", "routing_key_env", "id"):
                bad(f"{where}.{key}", "unknown key; expected email, routing_key_env, id")
        env = spec.get("routing_key_env")
        if env is not None and not (isinstance(env, str) and _ENV_NAME.match(env)):
            bad(
                f"{where}.routing_key_env",
                f"{env!r} is not an environment variable name ending in ROUTING_KEY (e.g. ERIN_ROUTING_KEY)",
            )
            env = None
        email = spec.get("email")
        out[name] = Person(name, str(email) if email else None, env)
    return out


def _schedules(raw: Any, people: Mapping[str, Person], bad: Any) -> dict[str, Schedule]:
    out: dict[str, Schedule] = {}
    for name, spec in _mapping(raw, "schedules", bad).items():
        where = f"schedules.{name}"
        spec = _mapping(spec, where, bad)
        zone = spec.get("time_zone", "UTC")
        if zone not in ("UTC", "Etc/UTC"):
            bad(f"{where}.time_zone", f"{zone!r}: only UTC is supported; give hand-offs in UTC")
        layers_raw = spec.get("layers")
        if not isinstance(layers_raw, list) or not layers_raw:
            bad(f"{where}.layers", "expected a list of at least one layer")
            continue
        layers = []
        for i, layer_raw in enumerate(layers_raw):
            layer = _layer(layer_raw, f"{where}.layers[{i}]", people, bad)
            if layer is not None:
                layers.append(layer)
        if len(layers) != len(layers_raw):
            continue
        layers.sort(key=lambda la: la.start)
        ok = True
        for i, (a, b) in enumerate(itertools.pairwise(layers)):
            if a.end is None or a.end > b.start:
                till = "open-ended" if a.end is None else f"until {_iso(a.end)}"
                bad(
                    f"{where}.layers",
                    f"overlap: layer {a.name or i} ({_iso(a.start)}, {till}) and layer {b.name or i + 1} "
                    f"(from {_iso(b.start)}) are both in effect; end the first where the next starts",
                )
                ok = False
            elif a.end < b.start:
                bad(
                    f"{where}.layers",
                    f"gap: nobody is on call from {_iso(a.end)} to {_iso(b.start)} (between layer "
                    f"{a.name or i} and layer {b.name or i + 1})",
                )
                ok = False
        if ok:
            out[name] = Schedule(name, tuple(layers))
    return out


def _layer(raw: Any, where: str, people: Mapping[str, Person], bad: Any) -> Layer | None:
    if not isinstance(raw, dict):
        bad(where, "expected a mapping with start, rotation_turn_length and users")
        return None
    for key in raw:
        if key not in ("name", "start", "end", "rotation_start", "rotation_turn_length", "users"):
            bad(f"{where}.{key}", "unknown key; expected name, start, end, rotation_start, "
                "rotation_turn_length, users")  # fmt: skip
    start = _time(raw.get("start"), f"{where}.start", bad, required=True)
    end = _time(raw.get("end"), f"{where}.end", bad)
    anchor = _time(raw.get("rotation_start"), f"{where}.rotation_start", bad)
    turn = _duration(raw.get("rotation_turn_length"), f"{where}.rotation_turn_length", bad)
    if turn is not None and turn <= dt.timedelta(0):
        bad(f"{where}.rotation_turn_length", "must be longer than 0")
        turn = None
    users = raw.get("users")
    good_users = True
    if not isinstance(users, list) or not users:
        bad(f"{where}.users", "expected a list of at least one person")
        good_users = False
    else:
        for j, user in enumerate(users):
            if not isinstance(user, str) or user not in people:
                known = ", ".join(sorted(people)) or "none"
                bad(f"{where}.users[{j}]", f"unknown person {user!r}; people has: {known}")
                good_users = False
    if start is not None and end is not None and end <= start:
        bad(f"{where}.end", f"{_iso(end)} is not after start {_iso(start)}")
        return None
    if start is None or turn is None or not good_users or (raw.get("end") is not None and end is None):
        return None
    return Layer(start, turn, tuple(str(u) for u in users or []), end, anchor, str(raw.get("name") or ""))


def _policies(
    raw: Any,
    people: Mapping[str, Person],
    schedules: Mapping[str, Schedule],
    declared: set[Any],
    bad: Any,
) -> dict[str, Policy]:
    out: dict[str, Policy] = {}
    for name, spec in _mapping(raw, "policies", bad).items():
        where = f"policies.{name}"
        spec = _mapping(spec, where, bad)
        tiers_raw = spec.get("tiers")
        if not isinstance(tiers_raw, list) or not tiers_raw:
            bad(f"{where}.tiers", "a policy needs at least one tier (target and timeout)")
            continue
        tiers: list[Tier] = []
        for i, tier_raw in enumerate(tiers_raw):
            tier = _tier(
                tier_raw,
                f"{where}.tiers[{i}]",
                people,
                schedules,
                declared,
                bad,
                last=i == len(tiers_raw) - 1,
            )
            if tier is not None:
                tiers.append(tier)
        if len(tiers) == len(tiers_raw):
            out[str(name)] = Policy(str(name), tuple(tiers))
    return out


def _tier(
    raw: Any,
    where: str,
    people: Mapping[str, Person],
    schedules: Mapping[str, Schedule],
    declared: set[Any],
    bad: Any,
    *,
    last: bool,
) -> Tier | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("target"), dict):
        bad(where, "expected {target: {schedule|person|routing_key_env: …}, timeout: …}")
        return None
    target_raw = raw["target"]
    if len(target_raw) != 1 or next(iter(target_raw)) not in ("schedule", "person", "routing_key_env"):
        bad(f"{where}.target", "expected exactly one of schedule, person, routing_key_env")
        return None
    kind, value = next(iter(target_raw.items()))
    value = str(value)
    if kind == "schedule" and value not in schedules:
        if value not in declared:  # a declared schedule with problems has them reported already
            known = ", ".join(sorted(map(str, declared))) or "none"
            bad(f"{where}.target.schedule", f"unknown schedule {value!r}; schedules has: {known}")
        return None
    if kind == "person" and value not in people:
        bad(
            f"{where}.target.person",
            f"unknown person {value!r}; people has: {', '.join(sorted(people)) or 'none'}",
        )
        return None
    if kind == "routing_key_env" and not _ENV_NAME.match(value):
        bad(
            f"{where}.target.routing_key_env",
            f"{value!r} is not an environment variable name ending in ROUTING_KEY (e.g. VP_ROUTING_KEY)",
        )
        return None
    if raw.get("timeout") is None and not last:
        bad(f"{where}.timeout", "required on every tier but the last (e.g. 5m)")
        return None
    timeout = _duration(raw.get("timeout", 0), f"{where}.timeout", bad)
    if timeout is None:
        return None
    if not last and timeout <= dt.timedelta(0):
        bad(f"{where}.timeout", "must be longer than 0 on every tier but the last")
        return None
    return Tier(Target(kind, value), timeout)


def _duration(value: Any, where: str, bad: Any) -> dt.timedelta | None:
    if isinstance(value, bool):
        value = None
    if isinstance(value, int | float) and value >= 0:
        return dt.timedelta(seconds=float(value))
    if isinstance(value, str) and (m := _DURATION.match(value.strip())):
        return dt.timedelta(seconds=int(m.group(1)) * _UNIT_S[m.group(2)])
    bad(where, f"{value!r} is not a duration; expected seconds or e.g. 30m, 12h, 1w")
    return None


def _time(value: Any, where: str, bad: Any, *, required: bool = False) -> dt.datetime | None:
    if value is None:
        if required:
            bad(where, "required: a UTC time such as 2026-11-02T10:00:00Z")
        return None
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        try:
            parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            bad(where, f"{value!r} is not a time; expected e.g. 2026-11-02T10:00:00Z")
            return None
    if parsed.tzinfo is None:
        bad(where, f"{value!r} has no time zone; write it in UTC with a Z")
        return None
    return parsed.astimezone(dt.UTC).replace(tzinfo=None)


def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- PagerDuty schedule export ------------------------------------------------------------------------


def from_pagerduty_schedule(export: Any) -> dict[str, Any]:
    """The `people` and `schedules` entries of an on-call file from a PagerDuty schedule as its REST API
    returns it (`GET /schedules/{id}`: `{"schedule": {name, time_zone, schedule_layers: [...]}}`).

    PagerDuty stacks layers (a higher one overrides the lower); the file's layers follow each other, so
    the import keeps PagerDuty's layer times and the file's check reports where they overlap."""
    body = export.get("schedule", export) if isinstance(export, dict) else None
    if not isinstance(body, dict) or not isinstance(body.get("schedule_layers"), list):
        raise OnCallError(["schedule: expected a PagerDuty schedule with schedule_layers"])
    people: dict[str, dict[str, str]] = {}
    layers = []
    for i, layer in enumerate(body["schedule_layers"]):
        if not isinstance(layer, dict):
            raise OnCallError([f"schedule.schedule_layers[{i}]: expected an object"])
        users = []
        for entry in layer.get("users") or []:
            user = entry.get("user", entry) if isinstance(entry, dict) else {}
            name = str(user.get("summary") or user.get("name") or user.get("id") or "")
            if not name:
                raise OnCallError([f"schedule.schedule_layers[{i}].users: a user without a summary or id"])
            people.setdefault(name, {"id": str(user.get("id") or "")})
            users.append(name)
        out: dict[str, Any] = {
            "name": str(layer.get("name") or f"layer {i + 1}"),
            "start": layer.get("start"),
            "rotation_start": layer.get("rotation_virtual_start") or layer.get("start"),
            "rotation_turn_length": layer.get("rotation_turn_length_seconds"),
            "users": users,
        }
        if layer.get("end"):
            out["end"] = layer["end"]
        layers.append(out)
    name = str(body.get("name") or body.get("id") or "pagerduty")
    zone = "UTC" if body.get("time_zone") in (None, "UTC", "Etc/UTC") else body["time_zone"]
    return {"people": people, "schedules": {name: {"time_zone": zone, "layers": layers}}}


# --- on-call load ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """One person's pages while on call for one schedule, over a period."""

    person: str
    pages: int
    on_call_weeks: float

    @property
    def pages_per_week(self) -> float | None:
        return round(self.pages / self.on_call_weeks, 2) if self.on_call_weeks > 0 else None


def on_call_load(
    schedule: Schedule, pages: Iterable[dt.datetime], start: dt.datetime, end: dt.datetime
) -> list[Load]:
    """Pages per engineer per on-call week (seed 002: under 5): each page in [start, end) counts for
    whoever the schedule had on call at that instant; each person's on-call time in the period, in
    weeks, divides it. Everyone on call in the period is listed (0 pages too), most pages first."""
    weeks: dict[str, float] = defaultdict(float)
    for person, lo, hi in schedule.shifts(start, end):
        weeks[person] += (hi - lo) / WEEK
    counts: dict[str, int] = defaultdict(int)
    for at in pages:
        if start <= at < end and (who := schedule.on_call(at)) is not None:
            counts[who] += 1
    return sorted(
        (Load(p, counts.get(p, 0), round(weeks.get(p, 0.0), 4)) for p in {*weeks, *counts}),
        key=lambda x: (-x.pages, x.person),
    )
