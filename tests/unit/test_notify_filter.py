from netfate.orchestrator.notify import matches


def test_subscription_filters() -> None:
    op = {"operation": "INSTANTIATE", "state": "COMPLETED", "vnf_instance_id": "cpe1-u-fw"}
    assert matches({}, op)
    assert matches({"operationTypes": ["INSTANTIATE"]}, op)
    assert not matches({"operationTypes": ["MIGRATE"]}, op)
    assert matches({"operationStates": ["COMPLETED", "FAILED"], "vnfInstanceIds": ["cpe1-u-fw"]},
                   op)
    assert not matches({"vnfInstanceIds": ["other"]}, op)
