"""The benchmark's count of SQL per booking, on a real SQLite file: what each hop may cost the
database. A hop that gains a query or a commit fails here first."""

from __future__ import annotations

from bench import statements


def test_one_booking_costs_each_hop_at_most_one_commit_and_three_statements():
    counted = statements.count(statements.bench_env())
    assert list(counted) == ["api", "processor", "confirmer", "relay", "notifier"]
    assert {part: figures["commits"] for part, figures in counted.items()} == {
        "api": 1,  # the booking and its first history row, in one transaction
        "processor": 0,  # reads only
        "confirmer": 1,  # the guarded UPDATE and its history row
        "relay": 1,  # marking the batch relayed
        "notifier": 0,
    }
    assert counted["api"]["SELECT"] == 1  # the key check, nothing else read
    assert all(figures["statements"] <= 3 for figures in counted.values()), counted
