"""The books: every produced sequence number recorded exactly once, or the run fails and says which."""

from __future__ import annotations

import numpy as np

from framework.results.metrics import accounting, accounting_errors
from framework.results.seqbooks import STATE_CODES, SeqBooks


def items(rows):
    """The books of these (worker, seq, state) records, as the chief keeps them: seq ranges per state."""
    books = SeqBooks()
    worker, seq, state = zip(*rows)
    books.add_records(np.asarray(worker), np.asarray(seq), np.asarray([STATE_CODES[s] for s in state]))
    return books


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
    from framework.engine.chief import RawRun
    from framework.engine.record import Recorder
    from framework.engine.runner import summarize

    spec = to_spec(compose(["run.items=3"]))
    recorder = Recorder()
    recorder.window.start_ns = 0
    recorder.add([(0, 0, 1, 2, 1.1), (0, 2, 1, 2, 2.1), (1, 0, 1, 2, 3.1), (1, 1, 1, 2, 3.1), (1, 2, 1, 2, 1.1)], 3)
    recorder.close()
    raw = RawRun(t0_ns=0, t_end_ns=4, status="ok", produced={0: 3, 1: 3}, forwarded={0: 3, 1: 3}, processes=[],
                 counts=recorder.counts(), books=recorder.books, histograms=recorder.histograms,
                 window=recorder.window, depth_edges=(0, 0), depth_area=(0.0, 0.0))
    summary = summarize(raw, spec)
    assert summary["status"] == "failed"
    assert summary["counts"]["lost"] == 1
    assert any("worker 0" in e and "seq [1]" in e for e in summary["errors"])
