"""SeqBooks: ranges instead of items, interleaved states, missing / duplicated / unexpected seqs."""

from __future__ import annotations

import numpy as np
import pytest

from framework.results.seqbooks import STATE_CODES, STATES, SeqBooks, join_touching, runs


def test_runs_and_join_touching():
    s, e = runs(np.array([5, 6, 7, 9, 10, 3]))
    assert list(zip(s.tolist(), e.tolist())) == [(3, 4), (5, 8), (9, 11)]
    s, e = runs(np.array([1, 2, 2, 3]))  # a repeat makes overlapping ranges
    assert list(zip(s.tolist(), e.tolist())) == [(1, 3), (2, 4)]
    s, e = join_touching(np.array([10, 0, 5, 20]), np.array([20, 5, 10, 25]))
    assert list(zip(s.tolist(), e.tolist())) == [(0, 25)]
    s, e = join_touching(np.array([0, 3, 5]), np.array([5, 4, 8]))  # [3,4) overlaps [0,5): kept apart
    assert list(zip(s.tolist(), e.tolist())) == [(0, 5), (3, 4), (5, 8)]


def test_a_million_consecutive_seqs_in_blocks_keep_a_handful_of_ranges():
    books = SeqBooks()
    workers = 4
    for start in range(0, 1_000_000, 1000):
        for w in range(workers):
            books.add_block(w, np.arange(start, start + 1000), "consumed")
    assert books.range_count() == workers  # one [0, 1e6) range per worker
    assert books.ranges(2, "consumed") == [(0, 1_000_000)]
    totals, per_worker, problems = books.check({w: 1_000_000 for w in range(workers)})
    assert problems == []
    assert totals["consumed"] == totals["produced"] == totals["accounted"] == 4_000_000
    assert totals["missing"] == totals["duplicates"] == totals["unexpected"] == 0


def test_interleaved_states_and_workers_in_mixed_record_blocks():
    rng = np.random.default_rng(0)
    n_workers, per_worker = 3, 30_000
    worker = np.repeat(np.arange(n_workers, dtype=np.int32), per_worker)
    seq = np.tile(np.arange(per_worker, dtype=np.int64), n_workers)
    # states change in long stretches (consumed, then dropped, ...), as a chief's rule does
    stretch = np.repeat(rng.integers(0, 5, per_worker // 500), 500)
    state = np.tile(stretch, n_workers).astype(np.int8)
    order = np.lexsort((seq, worker))
    # deliver as the chief would: blocks that interleave the workers, in seq order per worker
    interleave = np.argsort(np.tile(np.arange(per_worker), n_workers), kind="stable")
    worker, seq, state = worker[order][interleave], seq[order][interleave], state[order][interleave]
    books = SeqBooks()
    for lo in range(0, worker.size, 4096):
        books.add_records(worker[lo : lo + 4096], seq[lo : lo + 4096], state[lo : lo + 4096])
    books.add_range(1, per_worker, per_worker + 100, "lost")  # e.g. a dead worker's local queue
    totals, rows, problems = books.check({0: per_worker, 1: per_worker + 100, 2: per_worker})
    assert problems == []
    for code, name in enumerate(STATES[:5]):
        assert totals[name] == int((state == code).sum())
    assert totals["lost"] == 100
    assert totals["accounted"] == totals["produced"] == 3 * per_worker + 100
    # one range per stretch of a state at most (touching stretches of one state join)
    assert books.range_count() <= n_workers * (per_worker // 500)
    assert totals["left_in_queues"] == totals["left_global"] + totals["left_local"]


def test_a_missing_and_a_duplicated_seq_are_reported():
    books = SeqBooks()
    books.add_block(0, np.arange(0, 500), "consumed")
    books.add_block(0, np.arange(501, 1000), "consumed")  # 500 never accounted
    books.add_block(0, np.array([700]), "dropped_newest")  # 700 accounted twice, in two states
    books.add_block(1, np.arange(0, 100), 0)
    books.add_block(1, np.arange(50, 51), 0)  # 50 twice in the same state
    books.add_block(1, np.arange(100, 103), 3)  # 100..102 beyond what worker 1 produced
    totals, rows, problems = books.check({0: 1000, 1: 100, 2: 5})
    by_worker = {r["worker"]: r for r in rows}
    assert by_worker[0]["missing"] == 1 and by_worker[0]["missing_seqs"] == [500]
    assert by_worker[0]["duplicates"] == 1 and by_worker[0]["duplicates_seqs"] == [700]
    assert by_worker[1]["duplicates"] == 1 and by_worker[1]["duplicates_seqs"] == [50]
    assert by_worker[1]["unexpected"] == 3 and by_worker[1]["unexpected_seqs"] == [100, 101, 102]
    assert by_worker[2]["missing"] == 5 and by_worker[2]["missing_seqs"] == [0, 1, 2, 3, 4]
    assert totals["missing"] == 6 and totals["duplicates"] == 2 and totals["unexpected"] == 3
    assert len(problems) == 5
    assert any(p.startswith("worker 0: 1 seq(s) in no state") and "[500]" in p for p in problems)
    assert any(p.startswith("worker 1: 1 seq(s) accounted more than once") for p in problems)


def test_out_of_order_blocks_and_seqs_still_collapse():
    books = SeqBooks()
    rng = np.random.default_rng(1)
    blocks = [np.arange(s, s + 100) for s in range(0, 100_000, 100)]
    for i in rng.permutation(len(blocks)):
        b = blocks[i].copy()
        rng.shuffle(b)
        books.add_block(7, b, "consumed")
    assert books.ranges(7, "consumed") == [(0, 100_000)]
    assert books.check({7: 100_000})[2] == []


def test_merge_adds_the_books_of_another():
    a, b = SeqBooks(), SeqBooks()
    a.add_block(0, np.arange(0, 10), "consumed")
    b.add_block(0, np.arange(10, 20), "consumed")
    b.add_block(0, np.arange(5, 6), "left_local")
    totals, _, problems = a.merge(b).check({0: 20})
    assert totals["duplicates"] == 1 and len(problems) == 1
    assert a.ranges(0, "consumed") == [(0, 20)]


def test_bad_states_and_shapes_are_refused():
    books = SeqBooks()
    with pytest.raises(ValueError, match="unknown state"):
        books.add_block(0, np.arange(3), "eaten")
    with pytest.raises(ValueError, match="state codes must be 0..5"):
        books.add_records(np.zeros(2, int), np.arange(2), np.array([0, 9]))
    with pytest.raises(ValueError, match="same item records"):
        books.add_records(np.zeros(2, int), np.arange(3), np.zeros(2, int))
    assert STATE_CODES["lost"] == 5
