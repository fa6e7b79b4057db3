"""The books: every produced sequence number recorded exactly once, or the run fails and says which."""

from __future__ import annotations

import pandas as pd

from framework.results.metrics import accounting, accounting_errors


def items(rows):
    df = pd.DataFrame(rows, columns=["worker", "seq", "state"])
    df["state"] = pd.Categorical(df["state"], categories=["consumed", "left_global", "left_local"])
    return df


def test_balanced_books():
    df = items([(0, 0, "consumed"), (0, 1, "left_global"), (1, 0, "consumed"), (1, 1, "left_local")])
    totals, per_worker = accounting(df, {0: 2, 1: 2})
    assert totals["lost"] == totals["duplicates"] == 0
    assert totals["produced"] == totals["consumed"] + totals["left_in_queues"] == 4
    assert accounting_errors(totals, per_worker) == []


def test_gap_and_duplicate_are_named():
    df = items([(0, 0, "consumed"), (0, 2, "consumed"), (0, 2, "left_global"), (1, 0, "consumed")])
    totals, per_worker = accounting(df, {0: 4, 1: 1})
    assert totals["lost"] == 2 and totals["duplicates"] == 1
    assert per_worker[0]["missing_seqs"] == [1, 3]
    assert per_worker[0]["duplicated_seqs"] == [2]
    errors = accounting_errors(totals, per_worker)
    assert any("worker 0" in e and "lost unexplained" in e for e in errors)
    assert any("duplicates" in e for e in errors)


def test_worker_with_nothing_recorded_lost_everything():
    totals, per_worker = accounting(items([(0, 0, "consumed")]), {0: 1, 1: 3})
    assert per_worker[1]["lost"] == 3 and totals["lost"] == 3


def test_seq_beyond_produced_is_unexpected():
    totals, per_worker = accounting(items([(0, 0, "consumed"), (0, 5, "consumed")]), {0: 1})
    assert totals["unexpected"] == 1 and per_worker[0]["unexpected_seqs"] == [5]


def test_a_run_that_lost_an_item_is_failed_and_says_which():
    from framework.config.hydra import compose
    from framework.config.validate import to_spec
    from framework.engine.record import ItemRecorder
    from framework.engine.runner import summarize
    from framework.engine.chief import RawRun

    spec = to_spec(compose(["run.items=3"]))
    recorder = ItemRecorder()
    recorder.add([(0, 0, 1, 2, 1.1), (0, 2, 1, 2, 2.1), (1, 0, 1, 2, 3.1), (1, 1, 1, 2, 3.1), (1, 2, 1, 2, 1.1)], 3)
    depth = pd.DataFrame({"t_ns": [0, 4], "elapsed_s": [0.0, 4e-9], "queue": ["global", "global"],
                          "worker": [-1, -1], "depth": [0, 0]})
    raw = RawRun(items=recorder.frame(), depth=depth, t0_ns=0, t_end_ns=4, status="ok", produced={0: 3, 1: 3},
                 forwarded={0: 3, 1: 3}, processes=[])
    summary = summarize(raw, spec)
    assert summary["status"] == "failed"
    assert summary["counts"]["lost"] == 1
    assert any("worker 0" in e and "seq [1]" in e for e in summary["errors"])
