"""The bad-input table of lab 04: requests a robust /predict answers with a 4xx and a JSON error.

Each case: (what it is, method, path, body, content type, expected status). Bodies are text or
bytes, sent as they are: several are not valid JSON on purpose.
"""
from __future__ import annotations

ROW = "[5.1, 3.5, 1.4, 0.2]"
JSON = "application/json"

BAD_INPUTS = [
    ("a body that is not JSON", "POST", "/predict", '{"data": [[5.1, 3.5', JSON, 400),
    ("JSON sent as text/plain", "POST", "/predict", f'{{"data": [{ROW}]}}', "text/plain", 415),
    ("an empty body", "POST", "/predict", "", JSON, 400),
    ("bytes that are not UTF-8", "POST", "/predict", b'{"data": [[\xff\xfe]]}', JSON, 400),
    ("a JSON list instead of an object", "POST", "/predict", f"[{ROW}]", JSON, 400),
    ("the JSON literal null", "POST", "/predict", "null", JSON, 400),
    ('no "data" key', "POST", "/predict", f'{{"rows": [{ROW}]}}', JSON, 400),
    ('"data": null', "POST", "/predict", '{"data": null}', JSON, 400),
    ('"data" is a string', "POST", "/predict", '{"data": "5.1,3.5,1.4,0.2"}', JSON, 400),
    ('"data" is an empty list', "POST", "/predict", '{"data": []}', JSON, 400),
    ("one flat row, not a list of rows", "POST", "/predict", f'{{"data": {ROW}}}', JSON, 400),
    ("ragged rows", "POST", "/predict", f'{{"data": [{ROW}, [5.1, 3.5, 1.4]]}}', JSON, 400),
    ("rows of 5 numbers", "POST", "/predict", '{"data": [[5.1, 3.5, 1.4, 0.2, 9.9]]}', JSON, 400),
    ("numbers as strings", "POST", "/predict", '{"data": [["5.1", "3.5", "1.4", "0.2"]]}', JSON, 400),
    ("booleans", "POST", "/predict", '{"data": [[true, false, true, false]]}', JSON, 400),
    ("null in a row", "POST", "/predict", '{"data": [[null, 3.5, 1.4, 0.2]]}', JSON, 400),
    ("NaN", "POST", "/predict", '{"data": [[NaN, 3.5, 1.4, 0.2]]}', JSON, 400),
    ("Infinity", "POST", "/predict", '{"data": [[Infinity, 3.5, 1.4, 0.2]]}', JSON, 400),
    ("1e999 (overflows to infinity)", "POST", "/predict", '{"data": [[1e999, 3.5, 1.4, 0.2]]}', JSON, 400),
    ("an integer of 400 digits", "POST", "/predict", '{"data": [[' + "9" * 400 + ', 3.5, 1.4, 0.2]]}', JSON, 400),
    ("rows that are objects", "POST", "/predict", '{"data": [{"sepal_length": 5.1}]}', JSON, 400),
    ("nested junk inside a row", "POST", "/predict", '{"data": [[[5.1], [3.5], [1.4], [0.2]]]}', JSON, 400),
    ("100,000 nested brackets", "POST", "/predict", '{"data": ' + "[" * 100_000 + "]" * 100_000 + "}", JSON, 400),
    ("GET /predict (wrong method)", "GET", "/predict", None, None, 405),
    ("an unknown path", "POST", "/no-such-path", f'{{"data": [{ROW}]}}', JSON, 404),
]
