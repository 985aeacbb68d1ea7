from __future__ import annotations

from decimal import Decimal

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tradebot.core.jsonscan import (
    ERR_CAPACITY,
    ERR_PRECISION,
    ERR_SYNTAX,
    MISSING,
    key_code,
    scan_object,
)

CODES = np.array([key_code("U"), key_code("u"), key_code("pu")], np.int64)


def scan(frame: bytes, px: int = 2, sz: int = 3) -> tuple[int, list[int], list[list[int]]]:
    values = np.full(3, MISSING, np.int64)
    levels = np.zeros((64, 3), np.int64)
    n = scan_object(np.frombuffer(frame, np.uint8), 0, CODES, values, key_code("b"),
                    key_code("a"), px, sz, levels)
    return n, values.tolist(), levels[: max(n, 0)].tolist()


def test_fields_and_levels_are_read_exactly_in_any_key_order() -> None:
    frame = b'{"a":[["10.5","0.001"]],"e":"x","pu":-1,"b":[["9.99","2", 7]],"U":5,"u":"6"}'
    n, values, levels = scan(frame)
    assert n == 2
    assert values == [5, 6, -1]
    assert levels == [[-1, 1050, 1], [1, 999, 2000]]


def test_nested_values_and_escaped_strings_are_skipped() -> None:
    frame = b'{"x":{"b":[["1","1"]]},"s":"a\\"b","U":1,"b":[],"a":[]}'
    assert scan(frame)[0:2] == (0, [1, MISSING, MISSING])


def test_a_digit_finer_than_the_precision_is_an_error_but_trailing_zeros_are_not() -> None:
    assert scan(b'{"b":[["1.00000000","1.000"]]}')[0] == 1
    assert scan(b'{"b":[["1.001","1"]]}')[0] == ERR_PRECISION


def test_malformed_frames_are_syntax_errors_never_crashes() -> None:
    for frame in (b'{"b":[["1"]]}', b'{"b":[["1","2"]', b'{"b":', b"[1]", b'{"b":[["1e5","1"]]}'):
        assert scan(frame)[0] in (ERR_SYNTAX, ERR_PRECISION)


decimal_text = st.decimals(min_value=0, max_value=10**6, places=2, allow_nan=False,
                           allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(decimal_text, decimal_text), max_size=20))
def test_any_two_decimal_level_list_round_trips(pairs: list[tuple[Decimal, Decimal]]) -> None:
    body = ",".join(f'["{p}","{q}"]' for p, q in pairs)
    n, _, levels = scan(f'{{"b":[{body}]}}'.encode(), px=2, sz=2)
    assert n == len(pairs)
    assert levels == [[1, int(p * 100), int(q * 100)] for p, q in pairs]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_the_scanner(data: bytes) -> None:
    n, _, levels = scan(b'{"b":' + data)
    assert n in (ERR_SYNTAX, ERR_PRECISION, ERR_CAPACITY) or len(levels) == n >= 0
