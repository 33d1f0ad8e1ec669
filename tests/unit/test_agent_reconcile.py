import pytest

from netfate.agent.reconcile import diff
from netfate.bus.messages import InstanceSpec
from netfate.interfaces import NFInfo, NFPort, NFState


def spec(iid: str, sha: str = "a" * 64, **cfg: object) -> InstanceSpec:
    return InstanceSpec(instance_id=iid, nf_name="firewall", owner="u", bundle_sha256=sha,
                        config=dict(cfg))


def info(iid: str, sha: str = "a" * 64, state: NFState = NFState.RUNNING, **cfg: object) -> NFInfo:
    return NFInfo(instance_id=iid, node="n", owner="u", name="firewall", flavour="native",
                  bundle_sha256=sha, state=state, ports=[NFPort("lan", "fate-x")],
                  config={"default_out": "allow", **cfg})


def test_converged_node_needs_nothing() -> None:
    assert diff([spec("a", default_out="allow")], [info("a")]).empty()


def test_missing_extra_changed_and_stopped() -> None:
    acts = diff(
        [spec("new"), spec("cfg", default_out="deny"), spec("sha", sha="b" * 64), spec("stop")],
        [info("cfg"), info("sha"), info("stop", state=NFState.STOPPED), info("gone")],
    )
    assert [s.instance_id for s in acts.create] == ["new"]
    assert [s.instance_id for s in acts.update] == ["cfg"]
    assert [s.instance_id for s in acts.recreate] == ["sha"]
    assert acts.start == ["stop"]
    assert acts.delete == ["gone"]


def test_instance_in_another_flavour_is_recreated() -> None:
    moved = spec("a", default_out="allow").model_copy(update={"flavour": "container"})
    acts = diff([moved], [info("a")])
    assert [s.instance_id for s in acts.recreate] == ["a"]


def test_spec_without_flavour_is_native() -> None:
    # An orchestrator from before flavours travelled sends none.
    s = InstanceSpec.model_validate_json(
        '{"instance_id": "a", "nf_name": "f", "owner": "u", "bundle_sha256": "x"}')
    assert s.flavour == "native"


def test_an_nf_error_carries_the_status_of_its_kind() -> None:
    """A refusal of bad input (422) or for a missing capability (409) is told apart from a
    failure of the node (500): the operation records which (Reply.statuses)."""
    from netfate.agent.reconcile import NFErrors
    from netfate.agent.service import Agent
    from netfate.errors import DriverError, InvalidInput, MissingCapability

    errors = NFErrors()
    for iid, exc in (("a", InvalidInput("rule 3: port 70000 out of range")),
                     ("b", MissingCapability("no nftables")), ("c", DriverError("nft: 1"))):
        def boom(e: Exception = exc) -> None:
            raise e
        Agent._try(errors, "create", iid, boom)
    Agent._try(errors, "create", "d", lambda: None)
    assert errors.statuses == {"a": 422, "b": 409, "c": 500}
    assert errors["a"] == "create a: rule 3: port 70000 out of range" and "d" not in errors


def test_an_agents_refusal_becomes_the_operations_status() -> None:
    from netfate.bus.messages import NFActual, Reply
    from netfate.orchestrator.agents import (
        AgentBadReply,
        AgentRefused,
        AgentUnreachable,
        op_status,
    )
    from netfate.orchestrator.executor import _check
    from netfate.orchestrator.planner import Push

    reply = Reply(ok=False, error="x; y", errors={"cpe1-u-fw": "create: bad rule",
                                                   "cpe1-v-fw": "create: nft"},
                  statuses={"cpe1-u-fw": 422, "cpe1-v-fw": 500},
                  nfs=[NFActual(instance_id="cpe1-v-fw", nf_name="fw", owner="v",
                                state="failed", bundle_sha256="0" * 64)])
    with pytest.raises(AgentRefused) as got:
        _check(Push("cpe1", "running", "cpe1-u-fw"), reply)
    assert op_status(got.value) == 422 and "bad rule" in str(got.value)
    # An agent of before gives no status; nor may a bogus one pass through.
    for status in (None, 200, 999):
        assert op_status(AgentRefused("no", status)) == 500
    assert op_status(AgentUnreachable("cpe1", "no answer")) == 504
    assert op_status(AgentBadReply("cpe1", "not a Reply")) == 502
