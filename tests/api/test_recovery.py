"""Operations left unfinished by a stopped orchestrator are ended at the next start
(netfate.orchestrator.recovery), each the way its failure would have ended it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from netfate import catalogue
from netfate.bundle import inspect_bundle
from netfate.db import Database, repo
from netfate.db.models import LcmOperation, OpState, Presence
from netfate.orchestrator.recovery import end_interrupted_ops


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = Database.create(f"sqlite:///{tmp_path / 'nfvi.db'}")
    data = catalogue.bundle_bytes("firewall")
    desc, _ = inspect_bundle(data)
    with d.session() as s:
        sha = repo.add_bundle(s, data, name=desc.name, version=desc.version,
                              descriptor=desc.model_dump(mode="json", by_alias=True)).sha256
        for n in ("cpe1", "cpe2"):
            repo.upsert_node(s, n, role="cpe")
        repo.create_user(s, "user1", "secret1")
        for n in ("cpe1", "cpe2"):
            repo.upsert_instance(s, node=n, owner="user1", nf_name="firewall",
                                 bundle_sha256=sha, flavour="native")
    try:
        yield d
    finally:
        d.dispose()


def _op(db: Database, op: LcmOperation, iid: str, **params: str) -> str:
    with db.session() as s:
        return repo.new_op_occ(s, op, iid, dict(params)).id


def _state(db: Database, op_id: str) -> tuple[str, str | None]:
    with db.session() as s:
        occ = repo.get_op_occ(s, op_id)
        return occ.operation_state.value, (occ.error or {}).get("detail")


def _desired(db: Database, iid: str) -> str:
    with db.session() as s:
        return repo.get_instance(s, iid).desired_state.value


def test_nothing_to_do(db: Database) -> None:
    assert end_interrupted_ops(db) == []


def test_instantiate_is_rolled_back(db: Database) -> None:
    op = _op(db, LcmOperation.INSTANTIATE, "cpe1-user1-firewall")
    assert end_interrupted_ops(db) == [op]
    state, detail = _state(db, op)
    assert state == "ROLLED_BACK" and detail is not None and "restarted" in detail
    assert _desired(db, "cpe1-user1-firewall") == "absent"
    assert end_interrupted_ops(db) == []  # idempotent


def test_migrate_before_its_commit_point_is_rolled_back(db: Database) -> None:
    op = _op(db, LcmOperation.MIGRATE, "cpe1-user1-firewall", dst="cpe2",
             new_instance_id="cpe2-user1-firewall")
    end_interrupted_ops(db)
    assert _state(db, op)[0] == "ROLLED_BACK"
    assert _desired(db, "cpe1-user1-firewall") == "present"
    assert _desired(db, "cpe2-user1-firewall") == "absent"


def test_migrate_past_its_commit_point_completes(db: Database) -> None:
    op = _op(db, LcmOperation.MIGRATE, "cpe1-user1-firewall", dst="cpe2",
             new_instance_id="cpe2-user1-firewall")
    with db.session() as s:
        repo.set_instance_desired_state(s, "cpe1-user1-firewall", Presence.ABSENT)
    end_interrupted_ops(db)
    assert _state(db, op) == ("COMPLETED", None)
    assert _desired(db, "cpe2-user1-firewall") == "present"  # the NF is not lost


@pytest.mark.parametrize("operation", [LcmOperation.TERMINATE, LcmOperation.RELEASE,
                                       LcmOperation.UPDATE])
def test_others_fail_with_the_desired_state_kept(db: Database,
                                                 operation: LcmOperation) -> None:
    op = _op(db, operation, "cpe1-user1-firewall")
    end_interrupted_ops(db)
    state, detail = _state(db, op)
    assert state == "FAILED" and detail is not None and "restarted" in detail
    assert _desired(db, "cpe1-user1-firewall") == "present"


def test_rolling_back_ends_rolled_back(db: Database) -> None:
    op = _op(db, LcmOperation.UPDATE, "cpe1-user1-firewall")
    with db.session() as s:
        repo.set_op_state(s, op, OpState.ROLLING_BACK)
    end_interrupted_ops(db)
    assert _state(db, op)[0] == "ROLLED_BACK"


def test_final_ops_are_left_alone(db: Database) -> None:
    op = _op(db, LcmOperation.INSTANTIATE, "cpe1-user1-firewall")
    with db.session() as s:
        repo.set_op_state(s, op, OpState.COMPLETED)
    assert end_interrupted_ops(db) == []
    assert _state(db, op) == ("COMPLETED", None)
    assert _desired(db, "cpe1-user1-firewall") == "present"


def test_a_troubleshooting_question_cut_short_leaves_no_probe_nor_rule(db: Database) -> None:
    """The questions live in memory: at start, every probe still wanted and every probe TS
    rule is from one the restart interrupted; an operator's own rules stay."""
    from netfate.orchestrator.recovery import end_troubleshooting
    from netfate.orchestrator.troubleshoot_db import ensure_operator, get_occ, save_occ

    with db.session() as s:
        ensure_operator(s)
        sha = repo.list_instances(s)[0].bundle_sha256
        probe = repo.upsert_instance(s, node="cpe1", owner="operator", nf_name="firewall",
                                     bundle_sha256=sha, flavour="native").id
        repo.put_ts_rules(s, "cpe1", [
            {"rule_id": f"troubleshoot:{probe}:out", "match": {"in_port": "w"},
             "output": ["up"]},
            {"rule_id": "mine", "match": {"in_port": "a"}, "output": ["b"]}])
        save_occ(s, {"id": "q1", "operation_state": "PROCESSING", "start_time": 1.0,
                     "end_time": None, "steps": ["probe at cpe1"]})
    with db.session() as s:
        assert end_troubleshooting(s) == ([probe], 1)
        q = get_occ(s, "q1")
        assert q is not None and q["operation_state"] == "FAILED" and q["end_time"]
        assert "restarted" in q["error"]["detail"] and q["steps"] == ["probe at cpe1"]
    assert _desired(db, probe) == "absent"
    assert _desired(db, "cpe1-user1-firewall") == "present"
    with db.session() as s:
        assert [r.rule_id for r in repo.list_ts_rules(s, "cpe1")] == ["mine"]
        assert end_troubleshooting(s) == ([], 0)  # idempotent
