"""What `bench handover` waits for between moves (roaming/handover.py): the user's NFs run
at the new CPE only, judged from one listing per look."""

from __future__ import annotations

from netfate.roaming.handover import _only_at

WANT = {"cpe2-u-firewall"}


def test_done_when_exactly_the_new_instances_run_there() -> None:
    assert _only_at({"cpe2-u-firewall": "cpe2"}, WANT, "cpe2")


def test_not_while_the_old_one_runs_too_or_the_new_one_is_elsewhere() -> None:
    assert not _only_at({"cpe2-u-firewall": "cpe2", "cpe1-u-firewall": "cpe1"}, WANT, "cpe2")
    assert not _only_at({"cpe2-u-firewall": "cpe1"}, WANT, "cpe2")
    assert not _only_at({}, WANT, "cpe2")
