"""The deadline index: which clocks are due, at what cost."""

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.deadline_index import DeadlineIndex


def index_with(**dues):
    index = DeadlineIndex()
    for key, due in dues.items():
        index.schedule(key, due, partition=0)
    return index


class TestScheduling:
    def test_due_clocks_come_out_earliest_first(self):
        """A tick returns what is due, in due order, and nothing later."""
        index = index_with(a=30, b=10, c=20, d=99)
        assert index.pop_due(30) == ["b", "c", "a"]
        assert len(index) == 1 and index.next_due() == 99

    def test_rescheduling_moves_a_clock(self):
        """A clock moved later does not fire at its old instant."""
        index = index_with(a=10)
        index.schedule("a", 50, partition=0)
        assert index.pop_due(10) == [] and index.pop_due(50) == ["a"]

    def test_cancelling_stops_a_clock(self):
        """A met or paused clock (no next instant) never fires."""
        index = index_with(a=10)
        index.schedule("a", None, partition=0)
        assert index.pop_due(100) == [] and len(index) == 0

    def test_a_fired_clock_is_gone_until_rescheduled(self):
        """Firing removes the entry; the caller reschedules the next step."""
        index = index_with(a=10)
        assert index.pop_due(10) == ["a"] and index.pop_due(10) == []

    def test_revoked_partitions_are_dropped(self):
        """Clocks of partitions this worker lost are forgotten at once."""
        index = DeadlineIndex()
        for n in range(10):
            index.schedule(f"k{n}", n, partition=n % 2)
        assert index.drop_partitions([1]) == 5
        assert index.pop_due(100) == ["k0", "k2", "k4", "k6", "k8"]

    def test_stale_entries_do_not_grow_without_bound(self):
        """Rescheduling the same clock many times keeps the heap near its size."""
        index = DeadlineIndex()
        for n in range(10_000):
            index.schedule("a", n, partition=0)
        assert len(index._heap) <= 2 * len(index) + 1024


class TestAgainstAModel:
    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(
            st.tuples(
                st.sampled_from("abcdefgh"), st.one_of(st.none(), st.integers(0, 100)), st.integers(0, 120)
            ),
            max_size=60,
        )
    )
    def test_behaves_like_a_dict_of_due_instants(self, operations):
        """Interleaved schedules, cancels and ticks agree with a plain dictionary."""
        index, model = DeadlineIndex(), {}
        for key, due, now in operations:
            index.schedule(key, due, partition=0)
            if due is None:
                model.pop(key, None)
            else:
                model[key] = due
            fired = index.pop_due(now)
            expected = sorted((d, k) for k, d in model.items() if d <= now)
            assert fired == [k for _, k in expected]
            for k in fired:
                del model[k]
        assert len(index) == len(model)
