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
