"""Object ids: the prefix, then 24 characters drawn uniformly from letters and digits."""

from __future__ import annotations

import string
from collections import Counter

from assistd.core import ids

ALPHABET = set(string.ascii_letters + string.digits)


def test_ids_have_their_prefix_and_24_alphanumeric_characters() -> None:
    made = [ids.new_id(ids.RUN) for _ in range(5000)]
    assert len(set(made)) == len(made)
    for value in made:
        assert value.startswith("run_")
        body = value.removeprefix("run_")
        assert len(body) == 24
        assert set(body) <= ALPHABET


def test_every_position_uses_the_whole_alphabet_evenly() -> None:
    bodies = [ids.new_id("x_")[2:] for _ in range(12_400)]
    for position in (0, 11, 23):  # first, middle, last digit
        counts = Counter(body[position] for body in bodies)
        assert set(counts) == ALPHABET
        # 200 expected per character: a skewed draw (e.g. modulo bias, a stuck digit) shows.
        assert min(counts.values()) > 130, counts
        assert max(counts.values()) < 280, counts
