"""Random operation sequences on TaskArchive against a pure-Python reference model (hypothesis).

The model is the archive contract of docs/archive.md written plainly: dicts and sorted lists,
no cleverness.
Sampled ids cannot be predicted (the RNG is the archive's), so the model checks that every
drawn id is resident and replays the draw's bookkeeping; the distribution itself is compared
to the closed-form probabilities after every step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from archive_formulas import expected_probabilities
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from exit_verl import TaskArchive


@dataclass
class Entry:
    payload: bytes
    score: float
    added_step: int
    last_step: int
    times_sampled: int = 0


class ReferenceArchive:
    def __init__(self, capacity: int, admission: str) -> None:
        self.capacity = capacity
        self.admission = admission
        self.entries: dict[int, Entry] = {}
        self.lineage: dict[int, tuple[int, int, int]] = {}  # id -> parent, root, depth
        self.next_id = 0
        self.evicted = 0
        self.rejected = 0

    def add(self, payloads: list[bytes], scores: list[float], parents: list[int], step: int):
        ids = []
        for payload, score, parent in zip(payloads, scores, parents, strict=True):
            new = self.next_id
            self.next_id += 1
            ids.append(new)
            if parent < 0:
                self.lineage[new] = (-1, new, 0)
            else:
                _, root, depth = self.lineage[parent]
                self.lineage[new] = (parent, root, depth + 1)
            if len(self.entries) == self.capacity:
                victim = min(self.entries, key=lambda i: (self.entries[i].score, i))
                if self.admission == "not_below_min" and score < self.entries[victim].score:
                    self.rejected += 1  # an id and lineage, never resident
                    continue
                del self.entries[victim]
                self.evicted += 1
            self.entries[new] = Entry(payload, score, step, step)
        return ids


scores_st = st.floats(0.0, 4.0, allow_nan=False).map(lambda x: round(x, 1))  # many ties
# Softmax takes any finite score; gaps of hundreds of temperatures overflow exp() unshifted.
softmax_scores_st = st.one_of(
    scores_st,
    st.sampled_from([-900.0, -300.0, -1.5, 250.0, 700.0, 1e6]),
)


class ArchiveMachine(RuleBasedStateMachine):
    @initialize(
        capacity=st.integers(1, 12),
        prioritization=st.sampled_from(["rank", "proportional", "softmax"]),
        temperature=st.sampled_from([0.5, 1.0, 2.0]),
        staleness=st.sampled_from([0.0, 0.3, 1.0]),
        admission=st.sampled_from(["always", "not_below_min"]),
    )
    def setup(self, capacity, prioritization, temperature, staleness, admission) -> None:
        self.arc = TaskArchive(
            capacity,
            prioritization=prioritization,
            temperature=temperature,
            staleness_coef=staleness,
            admission=admission,
            seed=capacity,
        )
        self.model = ReferenceArchive(capacity, admission)
        self.scores = softmax_scores_st if prioritization == "softmax" else scores_st
        self.opts = (prioritization, temperature, staleness)
        self.step = 0
        self.floor = 0

    def _unchanged_after_error(self, call, error) -> None:
        before = self.arc.to_bytes()
        try:
            call()
        except error:
            pass
        else:
            raise AssertionError("expected an error")
        assert self.arc.to_bytes() == before

    @rule(
        data=st.data(),
        n=st.integers(1, 6),
        advance=st.integers(0, 2),
    )
    def add(self, data, n, advance) -> None:
        self.step += advance
        scores = [data.draw(self.scores) for _ in range(n)]
        known = sorted(self.model.lineage)  # forgotten ids cannot be parents
        parents = [data.draw(st.sampled_from([-1, *known])) if known else -1 for _ in range(n)]
        payloads = [f"p{self.model.next_id + i}".encode() for i in range(n)]
        ids = self.arc.add(payloads, scores, parents=parents, step=self.step)
        assert ids.tolist() == self.model.add(payloads, scores, parents, self.step)

    @rule(data=st.data())
    def update(self, data) -> None:
        if not self.model.entries:
            return
        ids = data.draw(st.lists(st.sampled_from(sorted(self.model.entries)), min_size=1))
        scores = [data.draw(self.scores) for _ in ids]
        self.arc.update_scores(ids, scores)
        for i, s in zip(ids, scores, strict=True):
            self.model.entries[i].score = s  # a repeated id keeps its last score

    @rule(k=st.integers(0, 8), advance=st.integers(0, 3))
    def sample(self, k, advance) -> None:
        if not self.model.entries:
            self._unchanged_after_error(lambda: self.arc.sample(1, step=self.step), ValueError)
            return
        self.step += advance
        drawn = self.arc.sample(k, step=self.step)
        assert len(drawn) == k
        for i in drawn.tolist():
            entry = self.model.entries[i]  # KeyError here = a non-resident was drawn
            entry.last_step = self.step
            entry.times_sampled += 1

    @rule(data=st.data())
    def remove(self, data) -> None:
        if not self.model.entries:
            return
        ids = data.draw(
            st.lists(st.sampled_from(sorted(self.model.entries)), min_size=1, unique=True)
        )
        self.arc.remove(ids)
        for i in ids:
            del self.model.entries[i]

    @rule(fraction=st.floats(0.0, 1.0))
    def forget_lineage(self, fraction) -> None:
        self.floor = self.arc.forget_lineage(int(self.model.next_id * fraction))
        self._drop_forgotten()

    def _drop_forgotten(self) -> None:
        # Below the floor, lineage lives exactly as long as the entry stays resident.
        for i in list(self.model.lineage):
            if i < self.floor and i not in self.model.entries:
                del self.model.lineage[i]

    @rule()
    def round_trip(self) -> None:
        self.arc = TaskArchive.from_bytes(self.arc.to_bytes())

    @rule(data=st.data())
    def bad_calls_change_nothing(self, data) -> None:
        gone = self.model.next_id + 5
        choice = data.draw(st.integers(0, 5))
        if choice == 0:
            self._unchanged_after_error(lambda: self.arc.add([b"x"], [float("nan")]), ValueError)
        elif choice == 1:
            self._unchanged_after_error(lambda: self.arc.update_scores([gone], [1.0]), KeyError)
        elif choice == 2:
            self._unchanged_after_error(
                lambda: self.arc.add([b"x", b"y"], [1.0, 1.0], parents=[-1, gone]), KeyError
            )
        elif choice == 3 and self.model.entries:
            latest = max(e.last_step for e in self.model.entries.values())
            if latest > 0:  # going behind a resident's last_step is an error
                self._unchanged_after_error(lambda: self.arc.sample(1, step=latest - 1), ValueError)
        elif choice == 4:
            self._unchanged_after_error(lambda: self.arc.sample(-1, step=self.step), ValueError)
        elif choice == 5:
            # A bad score later in the batch: the valid entries before it must not enter.
            self._unchanged_after_error(
                lambda: self.arc.add([b"x", b"y"], [1.0, float("inf")]), ValueError
            )

    @invariant()
    def matches_model(self) -> None:
        self._drop_forgotten()  # evictions and removals since the last rule
        m = self.model
        ids = sorted(m.entries)
        assert self.arc.ids().tolist() == ids
        assert len(self.arc) == len(ids) <= m.capacity
        stats = self.arc.stats()
        assert (stats["evicted"], stats["rejected"]) == (m.evicted, m.rejected)
        gone = [i for i in m.lineage if i not in m.entries]
        if gone:  # evicted, removed or rejected: lineage yes, residency no
            assert gone[-1] not in self.arc
            self._unchanged_after_error(lambda: self.arc.get(gone[-1:]), KeyError)
        if not ids:
            return
        info = self.arc.info(ids)
        np.testing.assert_array_equal(info["score"], [m.entries[i].score for i in ids])
        np.testing.assert_array_equal(info["last_step"], [m.entries[i].last_step for i in ids])
        np.testing.assert_array_equal(
            info["times_sampled"], [m.entries[i].times_sampled for i in ids]
        )
        assert self.arc.get(ids) == [m.entries[i].payload for i in ids]
        every = sorted(m.lineage)
        lineage = self.arc.lineage(every)
        forgotten = sorted(set(range(m.next_id)) - set(every))
        if forgotten:
            self._unchanged_after_error(lambda: self.arc.lineage(forgotten[:1]), KeyError)
        for key, col in (("parent", 0), ("root", 1), ("depth", 2)):
            np.testing.assert_array_equal(lineage[key], [m.lineage[i][col] for i in every])
        got_ids, probs = self.arc.probabilities(step=self.step)
        assert got_ids.tolist() == ids
        expected = expected_probabilities(
            np.array(ids),
            np.array([m.entries[i].score for i in ids]),
            np.array([m.entries[i].last_step for i in ids]),
            self.step,
            *self.opts,
        )
        np.testing.assert_allclose(probs, expected, rtol=1e-9, atol=1e-12)


ArchiveMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_archive_against_reference_model = ArchiveMachine.TestCase
