"""ZeroMQ frame messages (SPEC 3.2): validated before allocation, zero-copy, never raising.

Pure tests of ``livecell.stream.messages``: no sockets except a ``zmq.Frame``
to show the pixels stay a view of the message buffer. Property tests feed
arbitrary parts and arbitrary JSON headers and check that the parser always
answers with a ``Frame`` or a ``Rejection`` that the rest of the daemon can
write (journal key in range, event JSON serialisable).
"""

from __future__ import annotations

import json
import math
import re
import tracemalloc
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from livecell.errors import RejectedFrame
from livecell.events import frame_event, rejected_event, to_json_line
from livecell.frames import MAX_T, SUPPORTED_AXES, SUPPORTED_DTYPES, Frame, FrameKey, Rejection
from livecell.stream.messages import (
    HEADER_ECHO_CHARS,
    MAX_HEADER_BYTES,
    parse_header,
    parse_message,
)

MIB = 1024 * 1024
MAX_FRAME_BYTES = 1024 * MIB  # the config default, source.max_frame_mib = 1024
REQUIRED = ("v", "acquisition", "position", "t", "dtype", "shape", "axes", "timestamp")
REASON_TOKEN = re.compile(r"^[a-z][a-z_]*$")


@pytest.fixture(autouse=True)
def _strict_numpy() -> Iterator[None]:
    old = np.seterr(all="raise")
    yield
    np.seterr(**old)


def header(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "v": 1,
        "acquisition": "acq-1",
        "position": "A01",
        "t": 7,
        "dtype": "uint16",
        "shape": [4, 6],
        "axes": "YX",
        "timestamp": 1_700_000_000.25,
    }
    base.update(fields)
    return base


def encode(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields).encode()


def pixel_bytes(fields: dict[str, Any]) -> bytes:
    return bytes(math.prod(fields["shape"]) * np.dtype(fields["dtype"]).itemsize)


def parse(parts: list[bytes] | list[memoryview], max_frame_bytes: int = MAX_FRAME_BYTES) -> Any:
    return parse_message(parts, received_at=123.5, max_frame_bytes=max_frame_bytes)


def rejected_reason(parts: list[bytes], max_frame_bytes: int = MAX_FRAME_BYTES) -> str:
    result = parse(parts, max_frame_bytes)
    assert isinstance(result, Rejection), f"accepted: {result}"
    return result.reason


def assert_writable_downstream(result: Frame | Rejection) -> None:
    """What the pipeline does next must not fail: journal key in range, JSON line encodable."""
    if isinstance(result, Frame):
        assert 0 <= result.key.t <= MAX_T
        result.key.acquisition.encode("utf-8")
        result.key.position.encode("utf-8")
        line = to_json_line(frame_event(result).to_record(200.0))
    else:
        assert REASON_TOKEN.match(result.reason), result.reason
        assert result.quarantine is False
        assert result.path is None
        line = to_json_line(rejected_event(result).to_record(200.0))
    line.encode("utf-8")


# --------------------------------------------------------------------------- valid frames


def test_a_valid_message_becomes_a_frame() -> None:
    fields = header(pixel_size_um=0.325, channels=["phase", "PI"])
    pixels = np.arange(24, dtype="<u2").reshape(4, 6)

    frame = parse([encode(fields), pixels.tobytes()])

    assert isinstance(frame, Frame)
    assert frame.key == FrameKey("acq-1", "A01", 7)
    assert frame.source == "zmq"
    assert frame.axes == "YX"
    assert frame.completed_at == 123.5
    assert frame.pixel_size_um == 0.325
    assert frame.channels == ("phase", "PI")
    assert frame.path is None
    np.testing.assert_array_equal(frame.pixels, pixels)


dtypes = st.sampled_from(SUPPORTED_DTYPES)
axes_names = st.sampled_from(SUPPORTED_AXES)


@st.composite
def valid_frames(draw: st.DrawFn) -> tuple[dict[str, Any], np.ndarray]:
    dtype = np.dtype(draw(dtypes)).newbyteorder("<")
    axes = draw(axes_names)
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=len(axes), max_size=len(axes))))
    elements = (
        st.floats(width=32, allow_nan=False, allow_infinity=False) if dtype.kind == "f" else None
    )
    pixels = draw(hnp.arrays(dtype, shape, elements=elements))
    fields = header(
        acquisition=draw(st.text(min_size=1, max_size=20).filter(_utf8)),
        position=draw(st.text(min_size=1, max_size=20).filter(_utf8)),
        t=draw(st.integers(0, MAX_T)),
        dtype=dtype.name,
        shape=list(shape),
        axes=axes,
    )
    return fields, pixels


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@given(valid_frames())
def test_every_dtype_and_axes_round_trip_exactly_without_a_copy(
    case: tuple[dict[str, Any], np.ndarray],
) -> None:
    fields, pixels = case
    buffer = pixels.tobytes()

    frame = parse([encode(fields), buffer])

    assert isinstance(frame, Frame), frame
    assert frame.key == FrameKey(fields["acquisition"], fields["position"], fields["t"])
    assert frame.axes == fields["axes"]
    assert frame.shape == tuple(fields["shape"])
    assert frame.dtype == fields["dtype"]
    assert frame.pixels.dtype.byteorder in ("<", "=", "|")
    np.testing.assert_array_equal(frame.pixels, pixels, strict=True)
    assert np.shares_memory(frame.pixels, np.frombuffer(buffer, dtype=np.uint8))
    assert not frame.pixels.flags.writeable, "a view of immutable message bytes stays read-only"
    assert_writable_downstream(frame)


@pytest.mark.parametrize("dtype", SUPPORTED_DTYPES)
def test_pixels_are_a_view_of_the_zmq_frame_buffer(dtype: str) -> None:
    fields = header(dtype=dtype, shape=[3, 16, 16], axes="ZYX")
    pixels = (np.arange(3 * 16 * 16) % 200).astype(np.dtype(dtype).newbyteorder("<"))
    message = [zmq.Frame(encode(fields)), zmq.Frame(pixels.tobytes())]

    frame = parse([part.buffer for part in message])

    assert isinstance(frame, Frame)
    np.testing.assert_array_equal(frame.pixels, pixels.reshape(3, 16, 16))
    assert np.shares_memory(frame.pixels, np.frombuffer(message[1].buffer, dtype=np.uint8))


def test_big_endian_never_sneaks_in() -> None:
    """The wire is little-endian: 0x0102 as bytes 02 01 reads as 258 on any host."""
    frame = parse([encode(header(shape=[1, 1])), b"\x02\x01"])
    assert isinstance(frame, Frame)
    assert int(frame.pixels[0, 0]) == 0x0102


# --------------------------------------------------------------------------- rejections


@pytest.mark.parametrize("count", [0, 1, 3, 4])
def test_a_message_without_exactly_two_frames_is_bad_frame_count(count: int) -> None:
    fields = header()
    parts = [encode(fields), pixel_bytes(fields), b"extra", b"more"][:count]
    assert rejected_reason(parts) == "bad_frame_count"


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"",
        b"\xff\xfe\x00{}",  # not UTF-8
        b'{"v": 1,',  # truncated
        b'{"v": NaN}',  # NaN and Infinity are not JSON
        b'{"v": 1, "timestamp": Infinity}',
        b"[" * 60_000,  # deeper than the JSON decoder's recursion limit
    ],
    ids=["garbage", "empty", "not-utf8", "truncated", "nan", "infinity", "deep-nesting"],
)
def test_a_header_that_is_not_json_is_bad_json(raw: bytes) -> None:
    assert rejected_reason([raw, b"\x00" * 48]) == "bad_json"


@pytest.mark.parametrize("field", REQUIRED)
def test_a_missing_header_field_is_missing_field(field: str) -> None:
    fields = header()
    buffer = pixel_bytes(fields)
    del fields[field]
    result = parse([encode(fields), buffer])
    assert isinstance(result, Rejection)
    assert result.reason == "missing_field"
    assert field in result.detail


@pytest.mark.parametrize(
    "dtype", ["int64", "float64", "int16", "<u2", ">u2", "uint16 ", "bool", "object", 16, None]
)
def test_an_unknown_dtype_is_bad_dtype(dtype: object) -> None:
    assert rejected_reason([encode(header(dtype=dtype)), bytes(48)]) == "bad_dtype"


@pytest.mark.parametrize("delta", [-1, 1, -48, 4096])
def test_a_buffer_of_the_wrong_length_is_buffer_size_mismatch(delta: int) -> None:
    fields = header()  # 4 x 6 uint16 = 48 bytes
    assert rejected_reason([encode(fields), bytes(48 + delta)]) == "buffer_size_mismatch"


def test_an_absurd_shape_is_shape_too_large() -> None:
    fields = header(shape=[100_000, 100_000])
    assert rejected_reason([encode(fields), bytes(48)]) == "shape_too_large"


def test_the_size_limit_is_the_configured_one() -> None:
    fields = header(dtype="uint8", shape=[32, 32])  # 1024 bytes
    parts = [encode(fields), bytes(1024)]
    assert isinstance(parse(parts, max_frame_bytes=1024), Frame)
    assert rejected_reason(parts, max_frame_bytes=1023) == "shape_too_large"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"v": 2}, "bad_version"),
        ({"v": True}, "bad_version"),
        ({"v": "1"}, "bad_version"),
        ({"acquisition": ""}, "bad_field"),
        ({"acquisition": 5}, "bad_field"),
        ({"position": None}, "bad_field"),
        ({"position": "\ud800"}, "bad_field"),  # a lone surrogate cannot be written as UTF-8
        ({"t": -1}, "bad_field"),
        ({"t": 1.0}, "bad_field"),
        ({"t": True}, "bad_field"),
        ({"t": MAX_T + 1}, "bad_field"),  # beyond the journal's SQLite INTEGER
        ({"t": 10**30}, "bad_field"),
        ({"timestamp": "now"}, "bad_field"),
        ({"pixel_size_um": 0}, "bad_field"),
        ({"pixel_size_um": -0.1}, "bad_field"),
        ({"pixel_size_um": "0.3"}, "bad_field"),
        ({"channels": "PI"}, "bad_field"),
        ({"channels": ["PI", 3]}, "bad_field"),
        ({"shape": [4, 0]}, "bad_shape"),
        ({"shape": [4, -6]}, "bad_shape"),
        ({"shape": [4.0, 6]}, "bad_shape"),
        ({"shape": "4x6"}, "bad_shape"),
        ({"shape": [2, 2, 6]}, "bad_shape"),  # three sizes for axes YX
        ({"axes": "XY"}, "bad_axes"),
        ({"axes": "TYX"}, "bad_axes"),
    ],
)
def test_each_bad_field_is_named(fields: dict[str, Any], reason: str) -> None:
    assert rejected_reason([encode(header(**fields)), bytes(48)]) == reason


def test_an_overflowing_number_literal_is_a_bad_field() -> None:
    """``1e999`` is valid JSON that Python reads as inf: it must not pass as a timestamp."""
    raw = encode(header()).replace(b"1700000000.25", b"1e999")
    assert rejected_reason([raw, bytes(48)]) == "bad_field"
    raw = encode(header(pixel_size_um=0.5)).replace(b"0.5", b"1e999")
    assert rejected_reason([raw, bytes(48)]) == "bad_field"


def test_a_huge_integer_timestamp_is_fine() -> None:
    raw = encode(header()).replace(b"1700000000.25", b"1" + b"0" * 400)
    assert isinstance(parse([raw, bytes(48)]), Frame)


@pytest.mark.parametrize(
    "raw",
    [b"[1, 2]", b'"header"', b"null", b"42", b"{}" + b" " * (MAX_HEADER_BYTES - 1)],
    ids=["array", "string", "null", "number", "oversized"],
)
def test_a_header_that_is_not_an_object_or_too_big_is_bad_header(raw: bytes) -> None:
    assert rejected_reason([raw, bytes(48)]) == "bad_header"


def test_an_all_nan_float_frame_is_all_nan() -> None:
    fields = header(dtype="float32", shape=[2, 2])
    nan = np.full(4, np.nan, dtype="<f4").tobytes()
    assert rejected_reason([encode(fields), nan]) == "all_nan"


def test_a_rejection_echoes_a_bounded_header_and_has_a_stable_fingerprint() -> None:
    long_name = "x" * 5000
    fields = header(acquisition=long_name, dtype="int64")
    parts = [encode(fields), bytes(48)]

    first, again = parse(parts), parse(parts)
    other = parse([encode(header(dtype="int32")), bytes(48)])

    assert isinstance(first, Rejection)
    assert isinstance(again, Rejection)
    assert isinstance(other, Rejection)
    assert first.header is not None
    assert first.header == encode(fields)[:HEADER_ECHO_CHARS].decode()
    assert first.completed_at == 123.5
    assert first.key == FrameKey(long_name, "A01", 7), "its frame, though the dtype is bad"
    assert first.fingerprint == again.fingerprint != other.fingerprint
    assert rejected_event(first).event_id == rejected_event(again).event_id


def test_parse_header_raises_rejected_frame_with_the_reason() -> None:
    assert parse_header(encode(header()))["t"] == 7
    with pytest.raises(RejectedFrame) as caught:
        parse_header(b"{")
    assert caught.value.reason == "bad_json"


# --------------------------------------------------------------------------- allocation


def peak_bytes_while(parts: list[bytes], max_frame_bytes: int) -> tuple[object, int]:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = parse(parts, max_frame_bytes)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def test_an_absurd_shape_is_rejected_without_allocating_it() -> None:
    fields = header(shape=[100_000, 100_000])  # uint16: 20 GB declared
    declared = 100_000 * 100_000 * 2
    parts = [encode(fields), bytes(48)]

    result, peak = peak_bytes_while(parts, MAX_FRAME_BYTES)
    assert isinstance(result, Rejection)
    assert result.reason == "shape_too_large"
    assert peak < 256 * 1024, f"validation allocated {peak} bytes"
    assert peak * 10_000 < declared

    # Under a limit that lets the shape through, the buffer check still stops it first.
    result, peak = peak_bytes_while(parts, max_frame_bytes=declared)
    assert isinstance(result, Rejection)
    assert result.reason == "buffer_size_mismatch"
    assert peak < 256 * 1024, f"validation allocated {peak} bytes"


def test_a_full_size_frame_is_parsed_without_copying_its_pixels() -> None:
    fields = header(shape=[2048, 2048])
    buffer = np.ones((2048, 2048), dtype="<u2").tobytes()  # 8 MiB

    result, peak = peak_bytes_while([encode(fields), buffer], MAX_FRAME_BYTES)

    assert isinstance(result, Frame)
    assert peak < 256 * 1024, f"parsing an 8 MiB frame allocated {peak} bytes"


# --------------------------------------------------------------------------- properties

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
bad_numbers = st.sampled_from([math.nan, math.inf, -math.inf, 10**400, -1, 0, True, 2**64])
edge_values: dict[str, st.SearchStrategy[Any]] = {
    "v": st.sampled_from([0, 1.0, 2, True, "1"]),
    "acquisition": st.text(max_size=6) | st.sampled_from(["", "\ud800", "a\x00b", "\udcff x"]),
    "position": st.text(max_size=6) | st.sampled_from(["", "\ud800", "a/b", "\u2603"]),
    "t": st.integers(-(2**65), 2**65) | st.sampled_from([0, MAX_T, MAX_T + 1, 1.5]) | bad_numbers,
    "dtype": st.sampled_from([*SUPPORTED_DTYPES, "int64", "<u2", ""]),
    "shape": st.lists(st.integers(-1, 3) | bad_numbers, max_size=5),
    "axes": st.sampled_from([*SUPPORTED_AXES, "XY", ""]),
    "timestamp": st.floats() | bad_numbers,
    "pixel_size_um": st.floats() | bad_numbers,
    "channels": st.lists(st.text(max_size=4) | st.sampled_from(["\ud800"]), max_size=3),
}


@st.composite
def near_valid_headers(draw: st.DrawFn) -> dict[str, Any]:
    """A valid header with a few fields replaced (edge value, arbitrary JSON) or removed."""
    axes = draw(axes_names)
    fields = header(
        dtype=draw(dtypes),
        axes=axes,
        shape=draw(st.lists(st.integers(1, 3), min_size=len(axes), max_size=len(axes))),
        pixel_size_um=0.5,
        channels=["a"],
    )
    for name, edge in edge_values.items():
        change = draw(st.sampled_from(["keep"] * 16 + ["edge", "edge", "arbitrary", "remove"]))
        if change == "edge":
            fields[name] = draw(edge)
        elif change == "arbitrary":
            fields[name] = draw(json_values)
        elif change == "remove":
            del fields[name]
    return fields


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=300), max_size=5))
def test_arbitrary_parts_never_raise(parts: list[bytes]) -> None:
    result = parse(parts)
    assert isinstance(result, Frame | Rejection)
    assert_writable_downstream(result)


@settings(max_examples=300)
@given(json_values, st.binary(max_size=64))
def test_arbitrary_json_headers_never_raise(value: Any, buffer: bytes) -> None:
    result = parse([json.dumps(value).encode(), buffer])
    assert isinstance(result, Rejection)
    assert_writable_downstream(result)


@settings(max_examples=500)
@given(near_valid_headers(), st.data())
def test_near_valid_headers_never_raise_and_accept_only_what_fits(
    fields: dict[str, Any], data: st.DataObject
) -> None:
    raw = json.dumps(fields).encode()
    exact = _expected_bytes(fields)
    sizes = [exact] if exact is not None else []
    buffer = bytes(data.draw(st.sampled_from([*sizes, *sizes, *sizes, 0, 3]), label="buffer size"))

    result = parse([raw, buffer], max_frame_bytes=4096)

    assert isinstance(result, Frame | Rejection)
    assert_writable_downstream(result)
    if isinstance(result, Frame):
        assert len(buffer) == exact
        assert result.pixels.nbytes == len(buffer)
        assert np.shares_memory(result.pixels, np.frombuffer(buffer, dtype=np.uint8))


def _expected_bytes(fields: dict[str, Any]) -> int | None:
    shape, dtype = fields.get("shape"), fields.get("dtype")
    if not isinstance(shape, list) or dtype not in SUPPORTED_DTYPES:
        return None
    if not all(type(n) is int and 0 < n <= 3 for n in shape):
        return None
    return math.prod(shape) * np.dtype(dtype).itemsize


def test_a_rejection_after_a_readable_header_names_its_frame() -> None:
    fields = header()
    short = parse([encode(fields), pixel_bytes(fields)[:-1]])
    assert isinstance(short, Rejection)
    assert short.reason == "buffer_size_mismatch"
    assert short.key == FrameKey("acq-1", "A01", 7)
    event = rejected_event(short)
    assert (event.acquisition, event.position, event.t) == ("acq-1", "A01", 7)
    unreadable = parse([b"{not json", pixel_bytes(fields)])
    assert isinstance(unreadable, Rejection)
    assert unreadable.key is None
