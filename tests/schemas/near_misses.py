"""Values on both sides of the contract's edges, for the agreement tests.

Random JSON is refused by any decoder; what tells a decoder and a schema apart
is a value that almost fits: an instant a digit off, a UUID in another spelling,
an integer written as 4.0.
"""

from __future__ import annotations

from hypothesis import strategies as st


def _two_digits(low: int, high: int, edges: tuple[int, ...]) -> st.SearchStrategy[str]:
    return (st.integers(low, high) | st.sampled_from(edges)).map("{:02d}".format)


_years = (
    st.integers(1969, 3000)
    | st.sampled_from([1, 999, 1969, 1970, 1971, 1972, 2000, 2024, 2026, 2100, 2400, 2998, 2999, 3000, 9999])
).map("{:04d}".format)
_offsets = st.one_of(
    st.sampled_from(
        [
            "Z",
            "z",
            "+00:00",
            "-00:00",
            "",
            "+08:00",
            "+14:00",
            "-12:00",
            "+23:59",
            "-23:59",
            "+24:00",
            "+08:60",
            "+0800",
            "+08",
            "UTC",
            " +08:00",
        ]
    ),
    st.builds(
        "{}{}:{}".format,
        st.sampled_from("+-"),
        _two_digits(0, 23, (0, 23, 24)),
        _two_digits(0, 59, (0, 59, 60)),
    ),
)


@st.composite
def instants(draw) -> str:
    """Strings shaped like RFC 3339 date-times, valid or a little wrong."""
    date = "-".join(
        [
            draw(_years),
            draw(_two_digits(1, 12, (0, 1, 2, 12, 13))),
            draw(_two_digits(1, 31, (0, 1, 28, 29, 30, 31, 32))),
        ]
    )
    separator = draw(st.sampled_from("TTTTt _"))
    clock = ":".join(
        [
            draw(_two_digits(0, 23, (0, 23, 24))),
            draw(_two_digits(0, 59, (0, 59, 60))),
            draw(_two_digits(0, 59, (0, 59, 60))),
        ]
    )
    if draw(st.booleans()):
        clock = clock[:5] if draw(st.integers(0, 9)) == 0 else clock
    else:
        digits = draw(st.integers(0, 10))
        clock += draw(st.sampled_from(".,")) + "".join(
            draw(st.lists(st.sampled_from("0123456789"), min_size=digits, max_size=digits))
        )
    return f"{date}{separator}{clock}{draw(_offsets)}"


@st.composite
def event_ids(draw) -> str:
    """UUIDs in their canonical spelling and in every other one uuid.UUID reads."""
    value = draw(st.uuids())
    spell = draw(
        st.sampled_from(
            ["canonical", "canonical", "upper", "hex", "braces", "urn", "mixed", "short", "newline"]
        )
    )
    canonical = str(value)
    return {
        "canonical": canonical,
        "upper": canonical.upper(),
        "hex": value.hex,
        "braces": "{" + canonical + "}",
        "urn": value.urn,
        "mixed": canonical[:9] + canonical[9:].upper(),
        "short": canonical[:-1],
        "newline": canonical + "\n",
    }[spell]


def numbers_near(value: int | float) -> st.SearchStrategy[object]:
    """The same integer spelt otherwise, its neighbours, and things that are not integers."""
    whole = int(value)
    return st.sampled_from(
        [
            whole,
            float(whole),
            whole - 1,
            whole + 1,
            whole + 0.5,
            -whole,
            True,
            False,
            str(whole),
            2**64,
            -(2**63) - 1,
            1e300,
        ]
    )
