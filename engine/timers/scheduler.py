"""Timers that fire on time, exactly once, across restarts and processes.

Every instance row carries ``next_wakeup_at``: its earliest timer or SLA due time, set by
each unit of work. Firing is a unit of work too: claim one due instance (``FOR UPDATE
SKIP LOCKED`` on PostgreSQL, so processes share the work; SQLite has one writer at a
time), fire what is due, save, commit. Its ``next_wakeup_at`` then lies in the future, so
nobody fires it again; a crash before the commit leaves it due for the next sweep.

``Scheduler`` drives this in the background: an APScheduler wake-up job at the next due
time this process knows of (its own commands report theirs at once), and a sweep every
second, on a thread of its own waiting on the monotonic clock, that fires whatever is due
(set by another process, or due while the service was down) and learns the next due time.
Where anchors are configured (engine/audit/anchors.py), a third thread writes one when
the last is ``every`` old; the processes share it through a claim on the database, so one
of them writes each.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import func, select

from engine.audit import anchors
from engine.clock import as_utc
from engine.commands import instances, messages
from engine.errors import AnchorFailed, ProcessFailed, TradeflowError
from engine.logs import Throttled
from engine.runtime import Runtime, Unit, metrics
from engine.storage import Instance, InstanceStatus, StartTimer, faults, store
from engine.timers import housekeeping, start_timers

log = logging.getLogger("tradeflow.scheduler")

ACTOR = "scheduler"
BATCH = 20  # due instances fired per transaction
SWEEP_SECONDS = 1.0
RETRY_SECONDS = 60.0  # an instance that could not even be marked failed
# an instance whose firing met a fault (the database busy, a statement cancelled) is
# tried again after RETRY_MIN, then twice as long each time the fault is met again, up
# to RETRY_MAX
RETRY_MIN = timedelta(seconds=1)
RETRY_MAX = timedelta(minutes=1)
EXPIRE_EVERY = 60.0  # seconds between passes over kept messages past their expiry
ANCHOR_LOOK_EVERY = 60.0  # seconds between looks at whether an anchor is due
ANCHOR_RETRY = 300.0  # seconds before a process tries again after an anchor failed
# Spiff fires a timer once its due time has passed, strictly: wake just after it
_GRACE = timedelta(milliseconds=2)


@dataclass(frozen=True)
class Fired:
    instance_id: int | None  # None: a failed start round whose failure could not be recorded
    due: datetime
    at: datetime
    elements: list[str]


class Timers:
    """Find due instances and fire them, one unit of work each."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._faults = Throttled(log)  # a fault each sweep is one line a minute
        self._retries: dict[int, int] = {}  # instance: firings in a row that met a fault

    def next_due(self) -> datetime | None:
        """The earliest wake-up any running instance, or timer-started process, waits for."""
        with self.runtime.db.reading() as session:
            found = [
                session.scalar(
                    select(func.min(Instance.next_wakeup_at)).where(
                        Instance.status == InstanceStatus.RUNNING
                    )
                ),
                session.scalar(select(func.min(StartTimer.next_at))),
            ]
        due = [as_utc(d) for d in found if d is not None]
        return min(due) if due else None

    def pending(self) -> int:
        with self.runtime.db.reading() as session:
            return int(
                session.scalar(
                    select(func.count()).where(
                        Instance.status == InstanceStatus.RUNNING,
                        Instance.next_wakeup_at.is_not(None),
                    )
                )
                or 0
            ) + int(session.scalar(select(func.count()).select_from(StartTimer)) or 0)

    def fire_due(
        self, limit: int = 10_000, stopping: Callable[[], bool] = lambda: False
    ) -> list[Fired]:
        """Start the timer-started processes that are due, then fire every instance due
        now (up to ``limit`` each, and only until ``stopping()``); what was fired."""
        done: list[Fired] = []
        count = 0
        while count < limit and not stopping():
            try:
                fired = self.fire_start_one()
            except Exception as exc:  # one schedule must not keep every instance's waiting
                self._faults.error(
                    "start timer",
                    "a timer start could not run (tried again next sweep); instances' go on",
                    None if faults.fault_of(exc) else exc,
                )
                break
            if fired is None:
                break
            done.append(fired)
            count += 1
        try:
            if not self._anything_due(self.runtime.clock.now()):  # a read: no writer lock idle
                return done
            while len(done) < limit and not stopping() and (batch := self.fire_batch()):
                done += batch
        except Exception as exc:
            if faults.fault_of(exc) is None:
                raise
            # the database away or busy: nothing was fired or failed; the next sweep tries
            cause = str(exc).splitlines()[0]
            self._faults.error("due", f"due instances not fired, tried again: {cause}")
        return done

    def fire_batch(self, size: int = BATCH) -> list[Fired]:
        """Claim up to ``size`` due instances and fire each in a savepoint of one unit:
        one commit (one fsync on PostgreSQL) for the lot. An instance whose diagram fails
        on its timer is rolled back to its savepoint and marked failed in the same unit."""
        runtime = self.runtime
        now = runtime.clock.now()
        began = time.perf_counter()
        result: list[Fired] = []
        fired: list[Fired] = []
        with runtime.unit("timer") as unit:
            rows = store.claim_due_many(unit.conn, now, size)
            for row in rows:
                if time.perf_counter() - began > runtime.limits.max_seconds:
                    break  # each firing has its budget; the batch's lock is not held for all
                due = as_utc(row.next_wakeup_at or now)
                try:
                    with unit.savepoint(), unit.command(row, ACTOR) as work:
                        elements = instances.fire_timers(work)
                except Exception as exc:
                    fault = faults.fault_of(exc)
                    if fault is not None:  # not the diagram's: it waits and is tried again
                        if fault.kind == faults.FaultKind.DOWN:
                            raise  # the transaction went with the connection: all retried
                        self._retry_later(unit, row, exc, now)
                        continue
                    if isinstance(exc, ProcessFailed):
                        error = exc.message
                    else:
                        log.exception("instance %s could not fire its timers", row.id)
                        error = f"{type(exc).__name__}: {exc}"
                    # the diagram cannot go on: don't retry forever
                    log.warning("instance %s failed on a timer: %s", row.id, error)
                    self._fail(unit, row, error, now)
                    result.append(Fired(row.id, due, now, []))
                    continue
                self._retries.pop(row.id, None)
                fired.append(Fired(row.id, due, work.now, elements))
        for done in fired:  # committed
            metrics.timer_lateness((done.at - done.due).total_seconds())
        return fired + result

    def _retry_later(
        self, unit: Unit, row: store.InstanceRow, error: Exception, now: datetime
    ) -> None:
        """A fault while firing (a lock that ran out of time, a cancelled statement) is
        no reason to fail the instance: its firing is rolled back to its savepoint, and it
        is tried again later: twice as long each time in a row it meets one."""
        tries = self._retries.get(row.id, 0)
        if len(self._retries) > 10_000:  # the memory of a long outage, forgotten
            self._retries.clear()
        self._retries[row.id] = tries + 1
        # capped before it is computed: 2**47 seconds is past what a timedelta holds
        wait = min(RETRY_MAX, RETRY_MIN * 2 ** min(tries, 16))
        cause = str(error).splitlines()[0]  # not the statement's parameters: its data
        self._faults.error("firing", f"instance {row.id}: a fault while firing, retried: {cause}")
        with unit.savepoint():
            unit.postpone(row, now + wait)

    @staticmethod
    def _fail(unit: Unit, row: store.InstanceRow, error: str, now: datetime) -> None:
        """Mark the instance failed in its own savepoint; if even that cannot be done,
        look at it again a little later rather than undo the batch or claim it at once."""
        try:
            with unit.savepoint():
                unit.fail(row.id, error, ACTOR)
        except Exception:
            log.exception("instance %s could not be marked failed; retried later", row.id)
            unit.postpone(row, now + timedelta(seconds=RETRY_SECONDS))

    def preload(self, horizon: timedelta = timedelta(seconds=10), limit: int = 2000) -> int:
        """Restore the workflows of instances due within ``horizon`` into the live cache
        ahead of time, so that firing them only runs them: a thousand timers due in the
        same second are that much sooner done. Returns how many were restored."""
        runtime = self.runtime
        limit = min(limit, runtime.live.size // 2)  # leave the cache room for commands
        until = runtime.clock.now() + horizon
        restored = 0
        with runtime.db.reading() as session:
            rows = session.execute(
                select(Instance.id, Instance.revision)
                .where(Instance.status == InstanceStatus.RUNNING, Instance.next_wakeup_at <= until)
                .order_by(Instance.next_wakeup_at)
                .limit(limit)
            ).all()
            wanted = [i for i, rev in rows if not runtime.live.holds(i, rev)]
            for instance_id in wanted:
                row = store.read_instance(session.connection(), instance_id)
                if row is None or row.status != InstanceStatus.RUNNING:
                    continue
                runtime.live.keep(row, runtime.load(session, row))
                restored += 1
        metrics.live_cache(*runtime.live.held)
        return restored

    def fire_start_one(self) -> Fired | None:
        """Start one round of a process whose start timer is due; None when none is.

        A round that fails (its diagram, or its budget) is kept as a failed instance, and
        the schedule goes on; a schedule repeating faster than the minimum interval (stored
        before that was checked at deploy) is stopped, with a failed instance saying why."""
        runtime = self.runtime
        now = runtime.clock.now()
        with runtime.db.reading() as session:
            if session.scalar(select(StartTimer.id).where(StartTimer.next_at <= now)) is None:
                return None
        with runtime.unit("timer") as unit:
            row = start_timers.claim_due(unit.session, now)
            if row is None:
                return None
            due, element = as_utc(row.next_at), row.element_id
            too_fast = start_timers.too_fast(row, runtime.limits.min_timer_interval)
            if too_fast:
                unit.session.delete(row)
                error = f"timer start event '{element}' {too_fast}; its schedule was stopped"
                log.error("%s", error)
                iid = _record_failed_start(unit, row.definition_id, error, element)
                return Fired(iid, due, now, [])
            row_id, definition_id = row.id, row.definition_id
            try:
                with unit.savepoint():
                    work = instances.start_in(unit, definition_id, ACTOR, None, {}, timer=element)
                    start_timers.advance(unit.session, row, now)
            except Exception as exc:
                if faults.fault_of(exc) is not None:
                    raise  # the round is not skipped: the unit is undone, tried next sweep
                error = (
                    exc.message
                    if isinstance(exc, TradeflowError)
                    else f"{type(exc).__name__}: {exc}"
                )
                log.warning("timer start of %s failed: %s", element, error)
                # the round is skipped (committed whatever follows), and kept as a failed
                # instance saying why
                start_timers.skip_round(unit.session, row_id, due, now)
                iid = _record_failed_start(unit, definition_id, error, element)
                return Fired(iid, due, now, [])
        fired = Fired(work.instance.id, due, runtime.clock.now(), [element])
        metrics.timer_lateness((fired.at - due).total_seconds())
        return fired

    def _anything_due(self, now: datetime) -> bool:
        with self.runtime.db.reading() as session:
            return (
                session.scalar(
                    select(Instance.id)
                    .where(
                        Instance.status == InstanceStatus.RUNNING,
                        Instance.next_wakeup_at <= now,
                    )
                    .limit(1)
                )
                is not None
            )


def _record_failed_start(unit: Unit, definition_id: int, error: str, element: str) -> int | None:
    """The failed round as a failed instance, in a savepoint: what fails to build the
    process (its stored spec, say) may fail this too, and must not undo the skip."""
    try:
        with unit.savepoint():
            return instances.start_failed(unit, definition_id, error, actor=ACTOR, timer=element)
    except Exception:
        log.exception("the failed round of start timer %s could not be recorded", element)
        return None


class Scheduler:
    """In the background: an APScheduler wake-up at the next due time, and a sweep each
    second on a thread waiting on the monotonic clock."""

    def __init__(
        self,
        timers: Timers,
        sweep_seconds: float = SWEEP_SECONDS,
        anchoring: anchors.Setting | None = None,
    ) -> None:
        self.timers = timers
        self.sweep_seconds = sweep_seconds
        self.anchoring = anchoring
        self._failures = Throttled(log)
        self._anchor_after = 0.0  # monotonic: not before, after a failure
        self._aps = BackgroundScheduler(timezone=UTC)
        self._busy = threading.Lock()
        self._wake_at: datetime | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._last_expiry = 0.0
        self._kept_after = 0  # where the sweep of kept messages goes on from

    def start(self) -> None:
        self.timers.runtime.on_wakeup = self.notify
        self._aps.start()  # the precise wake-ups (``notify``); the pulse wakes it too
        self._every(self.sweep_seconds, self._pulse, "scheduler-sweep")
        if self.anchoring is not None:
            # a thread of its own: a slow webhook must not hold up the timers
            every = min(ANCHOR_LOOK_EVERY, self.anchoring.every.total_seconds())
            self._every(every, self.anchor_due, "scheduler-anchor")
        log.info("scheduler started (sweep every %.1f s)", self.sweep_seconds)

    def _every(self, seconds: float, step: Callable[[], object], name: str) -> None:
        """Run ``step`` now and every ``seconds`` after, on a thread of its own, until
        shutdown. The wait is on the monotonic clock (``Event.wait``): a step of the
        system clock neither stalls nor hurries it. (APScheduler's interval jobs wait by
        the wall clock: after a step back they slept for the size of the step.)"""

        def loop() -> None:
            while not self._stopping.is_set():
                self._guarded(step)
                if self._stopping.wait(seconds):
                    return

        threading.Thread(target=loop, name=name, daemon=True).start()

    def _pulse(self) -> None:
        """The regular sweep; and APScheduler, whose precise wake-ups wait by the wall
        clock, is woken to look at the clock again (a corrected clock is seen at once)."""
        self.sweep()
        if not self._stopping.is_set():
            self._aps.wakeup()

    def shutdown(self) -> None:
        """Stop: no new jobs, the running sweep ends after its current unit of work."""
        self._stopping.set()
        if self.timers.runtime.on_wakeup == self.notify:
            self.timers.runtime.on_wakeup = None
        # not wait=True: APScheduler would hold its job-store lock while a sweep that
        # schedules its next wake-up waits for that same lock
        self._aps.shutdown(wait=False)
        with self._busy:
            pass

    def notify(self, at: datetime) -> None:
        """A command set a wake-up: make sure one is scheduled by then."""
        if self._stopping.is_set():
            return
        at = as_utc(at)
        with self._lock:
            if self._wake_at is not None and self._wake_at <= at:
                return
            self._wake_at = at
        self._aps.add_job(
            self.sweep,
            "date",
            run_date=at + _GRACE,
            id="wake",
            replace_existing=True,
            misfire_grace_time=None,
        )

    def sweep(self) -> None:
        """Fire what is due, then schedule the wake-up for what is due next."""
        if not self._busy.acquire(blocking=False):
            return  # the other job is at it
        try:
            if self._stopping.is_set():
                return  # shut down while this one waited its turn
            with self._lock:
                self._wake_at = None
            self._guarded(lambda: self.timers.fire_due(stopping=self._stopping.is_set))
            if time.monotonic() - self._last_expiry >= EXPIRE_EVERY:
                self._last_expiry = time.monotonic()
                self._guarded(lambda: messages.expire(self.timers.runtime))
                self._guarded(self._hand_over_kept)
                runtime = self.timers.runtime
                self._guarded(lambda: housekeeping.sum_days(runtime))
                self._guarded(lambda: housekeeping.forget_keys(runtime, self._stopping.is_set))
            upcoming = None if self._stopping.is_set() else self._guarded(self.timers.next_due)
            if isinstance(upcoming, datetime):
                self.notify(upcoming)
                self._guarded(self.timers.preload)
        finally:
            self._busy.release()

    def anchor_due(self) -> anchors.Anchored | None:
        """Write an anchor if the last one is ``every`` old and no other process is at
        it; a failure is logged as an error and tried again some minutes later."""
        setting = self.anchoring
        if setting is None or self._stopping.is_set() or time.monotonic() < self._anchor_after:
            return None
        runtime = self.timers.runtime
        try:
            done = anchors.anchor(runtime.db, runtime.clock, setting.target, every=setting.every)
        except AnchorFailed as exc:
            self._anchor_after = time.monotonic() + ANCHOR_RETRY
            log.error("audit anchor failed: %s", exc.message)
            return None
        except Exception:
            self._anchor_after = time.monotonic() + ANCHOR_RETRY
            log.exception("audit anchor failed")
            return None
        if done is not None:
            record = done.record
            log.info("audit anchor %s written to %s", record.number, done.target)
            for warning in done.warnings:
                log.error("audit anchor %s: %s", record.number, warning)
        return done

    def _hand_over_kept(self) -> None:
        swept = messages.hand_over_kept(self.timers.runtime, after=self._kept_after)
        self._kept_after = swept.after

    def _guarded(self, step: Callable[[], object]) -> object:
        # the scheduler must outlive a database hiccup: log (once a minute for each kind),
        # and the next sweep tries again
        try:
            return step()
        except (TradeflowError, OSError, RuntimeError) as exc:
            self._failures.error(f"step {type(exc).__name__}", f"scheduler step failed: {exc}")
        except Exception as exc:
            fault = faults.fault_of(exc)
            kind = f"database {fault.kind}" if fault else f"step {type(exc).__name__}"
            text = f"scheduler step failed: {exc}".splitlines()[0]
            self._failures.error(kind, text, None if fault else exc)
        return None
