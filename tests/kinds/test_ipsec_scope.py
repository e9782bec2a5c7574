"""``ipsec_rule``'s steps between two rules (``transition``) never govern traffic that neither
rule governs, at any step, even if Windows applied each call's properties one by one, in any
order. Checked against an oracle written here (not the kind's code): which security level a rule
asks of each of a sample of flows, for many pairs of rules drawn from small domains."""

from __future__ import annotations

import ipaddress
import itertools
import random
from dataclasses import fields, replace
from functools import cache

import pytest

from hardening.kinds.ipsec import RequireGate, Scope, held_back, narrowed, require_gate, transition

LEVEL = {"None": 0, "Request": 1, "Require": 2}
FIELDS = tuple(f.name for f in fields(Scope))

# Small domains per property: enough to meet, overlap, contain and miss each other.
DOMAINS: dict[str, tuple[object, ...]] = {
    "enabled": (True, False),
    "inbound": ("None", "Request", "Require"),
    "outbound": ("None", "Request", "Require"),
    "protocol": ("TCP", "UDP", "Any"),
    "local_ports": (("Any",), ("50000",)),
    "remote_ports": (("Any",), ("389",), ("389", "636"), ("636",), ("1-1000",)),
    "local_addresses": (("Any",), ("10.0.10.11",)),
    "remote_addresses": (("Any",), ("10.0.20.1",), ("10.0.20.1", "10.0.20.2"), ("10.0.20.0/24",),
                         ("10.0.20.2-10.0.20.9",), ("10.0.30.1",)),
    "profiles": (("Any",), ("Domain",), ("Private", "Public")),
}
FLOWS = tuple(itertools.product(
    ("out", "in"), ("TCP", "UDP"), (50000, 10000), (389, 636, 2000),
    ("10.0.10.11", "10.0.10.12"), ("10.0.20.1", "10.0.20.2", "10.0.20.50", "10.0.30.1"),
    ("Domain", "Private", "Public")))


def _ports(tokens: tuple[str, ...], port: int) -> bool:
    for token in tokens:
        if token == "Any":
            return True
        first, _, last = token.partition("-")
        if int(first) <= port <= int(last or first):
            return True
    return False


def _addresses(tokens: tuple[str, ...], address: str) -> bool:
    ip = ipaddress.ip_address(address)
    for token in tokens:
        if token == "Any":
            return True
        if "/" in token and ip in ipaddress.ip_network(token):
            return True
        if "-" in token:
            first, last = (ipaddress.ip_address(t) for t in token.split("-"))
            if first <= ip <= last:
                return True
        elif "/" not in token and ipaddress.ip_address(token) == ip:
            return True
    return False


@cache
def coverage(scope: Scope) -> tuple[int, ...]:
    """The security level the rule asks of each flow (0 where it does not match)."""
    out = []
    profiles = {"Domain", "Private", "Public"} if "Any" in scope.profiles else set(scope.profiles)
    for direction, protocol, local_port, remote_port, local, remote, profile in FLOWS:
        matches = (scope.enabled and scope.protocol in ("Any", protocol) and _ports(scope.local_ports, local_port)
                   and _ports(scope.remote_ports, remote_port) and _addresses(scope.local_addresses, local)
                   and _addresses(scope.remote_addresses, remote) and profile in profiles)
        out.append(LEVEL[scope.outbound if direction == "out" else scope.inbound] if matches else 0)
    return tuple(out)


def valid(scope: Scope) -> bool:
    """Windows refuses ports with protocol Any, so no call can leave a rule like that [I]."""
    return scope.protocol != "Any" or (scope.local_ports == ("Any",) and scope.remote_ports == ("Any",))


def scope(**values: object) -> Scope:
    base: dict[str, object] = {"enabled": True, "inbound": "Request", "outbound": "Request", "protocol": "TCP",
                               "local_ports": ("Any",), "remote_ports": ("389",), "local_addresses": ("Any",),
                               "remote_addresses": ("10.0.20.1",), "profiles": ("Any",)}
    base.update(values)
    if base["protocol"] == "Any":
        base.update(local_ports=("Any",), remote_ports=("Any",))
    return Scope(**base)  # type: ignore[arg-type]


def random_scope(rng: random.Random) -> Scope:
    return scope(**{name: rng.choice(values) for name, values in DOMAINS.items()})


def partial_states(previous: Scope, following: Scope) -> list[Scope]:
    """Every rule one call could pass through if Windows took its properties one at a time."""
    changed = [n for n in FIELDS if getattr(previous, n) != getattr(following, n)]
    out = []
    for size in range(len(changed) + 1):
        for subset in itertools.combinations(changed, size):
            mixed = replace(previous, **{n: getattr(following, n) for n in subset})
            if valid(mixed):
                out.append(mixed)
    return out


def never_broader(before: Scope, after: Scope) -> list[str]:
    """Where a step of ``transition(before, after)`` asks more of a flow than both ends do."""
    bound = tuple(max(a, b) for a, b in zip(coverage(before), coverage(after), strict=True))
    path = transition(before, after)
    problems = []
    if path and path[-1].key() != after.key():
        problems.append(f"the steps end at {path[-1]}, not {after}")
    for n, (previous, following) in enumerate(itertools.pairwise([before, *path])):
        for state in partial_states(previous, following):
            over = [FLOWS[i] for i, (got, top) in enumerate(zip(coverage(state), bound, strict=True)) if got > top]
            if over:
                problems.append(f"step {n + 1} can pass through {state}, which asks more of {over[0]}")
    return problems


PAIRS_RANDOM = 600


def test_random_pairs_never_pass_through_a_broader_rule() -> None:
    rng = random.Random(20260110)
    failures = []
    for _ in range(PAIRS_RANDOM):
        before, after = random_scope(rng), random_scope(rng)
        problems = never_broader(before, after)
        if problems:
            failures.append((before, after, problems[0]))
    assert failures == [], failures[:3]


@pytest.mark.parametrize("name", [n for n in FIELDS if n != "enabled"])
def test_pairs_that_differ_in_one_property_never_pass_through_a_broader_rule(name: str) -> None:
    for a, b in itertools.permutations(DOMAINS[name], 2):
        before, after = scope(**{name: a}), scope(**{name: b})
        assert never_broader(before, after) == [], (before, after)


def test_the_old_create_then_narrow_order_is_what_the_oracle_catches() -> None:
    """The oracle is not one that cannot fail: the rule made with no filter and narrowed after."""
    desired = scope(remote_ports=("389", "636"), remote_addresses=("10.0.20.1", "10.0.20.2"))
    created_bare = scope(protocol="Any", remote_addresses=("10.0.20.1", "10.0.20.2"))
    bound = coverage(desired)  # the rule did not exist before: nothing to add to the bound
    assert any(got > top for got, top in zip(coverage(created_bare), bound, strict=True))


def test_a_rule_changed_across_disjoint_ports_is_disabled_in_between() -> None:
    before, after = scope(remote_ports=("389",)), scope(remote_ports=("636",), remote_addresses=("10.0.20.0/24",))
    path = transition(before, after)
    assert [s.enabled for s in path] == [False, False, True]
    assert path[-1] == after
    assert never_broader(before, after) == []


def test_a_mixed_change_narrows_first_then_widens() -> None:
    before = scope(protocol="Any", inbound="None", outbound="Request", remote_addresses=("10.0.20.1", "10.0.20.2"))
    after = scope(remote_ports=("389", "636"), remote_addresses=("10.0.20.1", "10.0.20.2"))
    first, second = transition(before, after)
    assert first == scope(remote_ports=("389", "636"), inbound="None", remote_addresses=("10.0.20.1", "10.0.20.2"))
    assert second == after
    assert narrowed(before, after) == first


def test_address_and_port_intersections_are_written_as_ranges() -> None:
    before = scope(remote_ports=("1-1000",), remote_addresses=("10.0.20.0/24",))
    after = scope(remote_ports=("389", "636-2000"), remote_addresses=("10.0.20.2-10.0.21.9",), inbound="Require")
    meet = narrowed(before, after)
    assert meet is not None
    assert meet.remote_ports == ("389", "636-1000")
    assert meet.remote_addresses == ("10.0.20.2-10.0.20.255",)
    assert meet.inbound == "Request"


def test_nothing_changes_nothing_is_written() -> None:
    assert transition(scope(), scope()) == []


# ---------------------------------------------------------------------------------------------
# Require waits for negotiation (the kind's JSON cases show it end to end; these name the reasons).

RULE = {"Enabled": "True", "InboundSecurity": "Request", "OutboundSecurity": "Request", "Protocol": "TCP",
        "RemotePort": ["389"], "RemoteAddress": ["10.0.20.1", "10.0.20.2"], "Profile": ["Any"],
        "Authentication": [{"method": "MachineKerberos"}], "KeyModule": "Default"}
WANT = {**RULE, "InboundSecurity": "Require"}
LABELS = {"10.0.20.2": "dc02.contoso.com (10.0.20.2)"}


def test_nothing_waits_when_every_peer_negotiated_under_the_rule() -> None:
    assert require_gate(RULE, WANT, ["10.0.20.1", "10.0.20.2"], ["10.0.20.2", "10.0.20.1", "10.0.9.9"],
                        LABELS) == RequireGate()


def test_a_peer_without_a_main_mode_sa_holds_the_direction_at_request() -> None:
    assert require_gate(RULE, WANT, ["10.0.20.1", "10.0.20.2"], ["10.0.20.1"], LABELS) == RequireGate(
        ("no main mode SA with dc02.contoso.com (10.0.20.2)", "the rule stays at Request"), ("InboundSecurity",))


def test_no_move_to_require_nothing_waits() -> None:
    assert require_gate(RULE, RULE, ["10.0.20.1"], [], LABELS) == RequireGate()
    already = {**RULE, "InboundSecurity": "Require"}
    assert require_gate(already, WANT, ["10.0.20.1", "10.0.20.2"], [], LABELS) == RequireGate()


def test_what_an_sa_cannot_vouch_for() -> None:
    changed_auth = {**WANT, "Authentication": [{"method": "MachineCert", "authority": "CN=CA"}]}
    disabled = {**RULE, "Enabled": "False"}
    assert require_gate(disabled, changed_auth, ["10.0.20.0/24", "10.0.20.7"], ["10.0.20.7"], {}).blockers == (
        "the rule is disabled, so no peer has negotiated under it",
        "its computer authentication changes in this run, and no peer has negotiated with the new one",
        "10.0.20.0/24 is a subnet, range or keyword: main mode SAs cannot show that every host in it negotiates",
        "10.0.20.7 is not among the rule's peers yet",
        "the rule stays at Request")


def test_a_disabled_rule_at_require_is_not_at_require() -> None:
    disabled = {**WANT, "Enabled": "False"}
    gate = require_gate(disabled, WANT, ["10.0.20.1"], ["10.0.20.1"], {})
    assert gate.hold == ("InboundSecurity",)


def test_new_settings_on_a_rule_at_require_go_through_request() -> None:
    already = {**RULE, "InboundSecurity": "Require", "OutboundSecurity": "Require"}
    want = {**already, "KeyModule": "AuthIP"}
    gate = require_gate(already, want, ["10.0.20.1", "10.0.20.2"], ["10.0.20.1", "10.0.20.2"], {})
    assert gate.hold == ("InboundSecurity", "OutboundSecurity")
    assert held_back(want, gate)["InboundSecurity"] == held_back(want, gate)["OutboundSecurity"] == "Request"


def test_a_peer_new_to_a_rule_at_require_is_left_out_until_it_negotiates() -> None:
    one = {**RULE, "InboundSecurity": "Require", "RemoteAddress": ["10.0.20.1"]}
    want = {**one, "RemoteAddress": ["10.0.20.1", "10.0.20.2"]}
    gate = require_gate(one, want, ["10.0.20.1", "10.0.20.2"], ["10.0.20.1"], LABELS)
    assert gate == RequireGate(("no main mode SA with dc02.contoso.com (10.0.20.2)", "dc02.contoso.com (10.0.20.2) "
                                "is left out of the rule at Require for now"), (), ("10.0.20.2",))
    assert held_back(want, gate)["RemoteAddress"] == ["10.0.20.1"]
    assert require_gate(one, want, ["10.0.20.1", "10.0.20.2"], ["10.0.20.1", "10.0.20.2"], LABELS) == RequireGate()


def test_when_every_peer_is_new_the_rule_goes_to_request_rather_than_to_no_peer() -> None:
    one = {**RULE, "InboundSecurity": "Require", "RemoteAddress": ["10.0.20.1"]}
    want = {**one, "RemoteAddress": ["10.0.20.2"]}
    gate = require_gate(one, want, ["10.0.20.2"], [], LABELS)
    assert gate.hold == ("InboundSecurity",) and gate.held_peers == ()
    assert held_back(want, gate)["RemoteAddress"] == ["10.0.20.2"]
