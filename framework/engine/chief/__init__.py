"""The chief: starts the workers, runs the check loop, stops everything, keeps the books.

It is made of parts with one role each: ``loop`` (the check loop, and one run from start to
stop), ``intake`` (taking items and recording them), ``supervisor`` (the workers' lives and the
failure policy), ``books`` (counters and accounting), ``progress`` (the live line) and
``interrupts`` (Ctrl-C). The backend (``framework.engine.backends``) is handed in and offers hooks.

Data flow (one run)::

                      shared control block (int64 slots, one writer each)
          +------------------------------------------------------------------+
          | STOP  START_NS  TAKEN    | worker i: PRODUCED FORWARDED HEARTBEAT |
          +------------------------------------------------------------------+
               ^ chief writes                ^ worker i writes
    worker i                                                     chief (main process)
    --------                                                     --------------------
    source() --> local queue --(threshold/deadline)--> put ==> global queue ==> get_many
     seeded      (deque |       transform, stamp         queue design      every chief.interval_s,
     stream i     mp_queue)     forwarded_ns             (framework.       if depth > global_threshold:
     created_ns                                           queues)          take, stamp consumed_ns,
                                                                           record (Intake)

Queue depths are computed from the counters (global = sum(FORWARDED) - TAKEN, local i =
PRODUCED_i - FORWARDED_i - DROPPED_i), never from ``qsize()``. Records stream to the run
directory as the run goes (``framework.engine.record``).

Shutdown protocol:

1. The chief decides the run is over (rounds, ``run.duration_s``, ``run.items``, a worker
   failure, Ctrl-C or SIGTERM) and stamps ``t_end``: the measured window is closed.
2. It sets STOP. Each worker leaves its loop within one sleep slice (50 ms), puts a
   ``Leftovers`` message with what its local queue holds (forwarded through the
   transform, or kept as drawn, per ``run.on_stop``), then ``EndOfStream`` with its
   own account (and its traceback if it failed), then flushes and closes its end.
3. The chief drains the global queue while waiting for every ``EndOfStream`` (items
   drained are ``left_global``), for at most ``run.drain_timeout_s``: draining while
   joining is what keeps a ``multiprocessing.Queue`` feeder thread from hanging the exit.
4. It joins each worker; a straggler is terminated, then killed. The design closes.
5. Accounting by sequence numbers: for each worker, every seq in [0, produced) must
   appear exactly once among consumed + left items; otherwise the run is failed and
   the summary says which worker lost or duplicated what.

A second Ctrl-C during the drain kills the workers at once (still reaped, still closed).

Worker failures. A worker that raises sends ``WorkerError`` on a side channel at once
(then leftovers and ``EndOfStream`` as usual); one that dies shows as an exit code;
one that hangs stops writing its heartbeat (a worker blocked inside a put marks itself
``IN_PUT`` and is not hung). The chief checks every 50 ms and applies
``workers.on_failure``: ``abort`` (stop, status failed), ``continue`` (carry on
without it) or ``restart`` (a new process with the next seed stream of that worker,
its sequence numbers and counters continued, at most ``workers.max_restarts`` times).
What a dead worker held in its local queue is exactly the seqs in
[FORWARDED + DROPPED, PRODUCED) at its death: counted lost with that reason.

Backpressure. With a bound (``queue.maxsize`` / ``queue.max_bytes``, in items) workers
check the counter depth before each forward: ``block`` waits (time recorded),
``drop_newest`` drops the batch (seqs reported in ``EndOfStream``), ``fail`` raises;
under ``drop_oldest`` the chief evicts the oldest items past the bound.
"""

from framework.engine.chief.loop import Chief, RawRun, run_system

__all__ = ["Chief", "RawRun", "run_system"]
