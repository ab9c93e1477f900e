"""The emulator answers malformed and oversized requests with a 4xx in the API's error shape.

Each body is sent raw (an asyncio stream on 127.0.0.1), byte for byte, since aiohttp's own client
refuses to build most of them. Before these fixes every one of them was a 500.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

import aiohttp
import orjson
import pytest

from finetune_async.emulator import Emulator, Limits

AUTH = {"Authorization": "Bearer test"}
ERROR_KEYS = {"message", "type", "param", "code"}
BOUND = 10.0
MULTIPART = "multipart/form-data; boundary=abc"


async def send_raw(emu: Emulator, path: str, content_type: str, body: bytes) -> tuple[int, Any]:
    """POST ``body`` as it is; return the status and the JSON body (None if not JSON)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
    try:
        head = (
            f"POST /v1{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer test\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        writer.write(head + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), BOUND)
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    payload = rest.partition(b"\r\n\r\n")[2]
    try:
        parsed = orjson.loads(payload)
    except orjson.JSONDecodeError:
        parsed = None
    return int(status_line.split()[1]), parsed


def assert_error(body: Any, *, param: str | None = None) -> dict[str, Any]:
    """``body`` is ``{"error": {...}}`` with the four keys, a client error, naming ``param``."""
    assert isinstance(body, dict), body
    error = body["error"]
    assert ERROR_KEYS == set(error)
    assert "invalid_request_error" == error["type"]
    assert param == error["param"]
    return dict(error)


def part(name: str, value: bytes, *, filename: str | None = None, headers: str = "") -> bytes:
    """One part of a multipart body with boundary ``abc``."""
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    return (
        f"--abc\r\nContent-Disposition: {disposition}\r\n{headers}\r\n".encode() + value + b"\r\n"
    )


def form(*parts: bytes) -> bytes:
    """A whole multipart body with boundary ``abc``."""
    return b"".join(parts) + b"--abc--\r\n"


GOOD_FILE = part("file", b'{"a": 1}\n', filename="data.jsonl")
BATCH = part("purpose", b"batch")

MALFORMED = {
    "not multipart at all": (MULTIPART, b"hello"),
    "a boundary that is never there": ("multipart/form-data; boundary=zzz", form(BATCH, GOOD_FILE)),
    "no boundary parameter": ("multipart/form-data", form(BATCH, GOOD_FILE)),
    "an empty boundary": ('multipart/form-data; boundary=""', b"hello"),
    "a boundary over 70 characters": ("multipart/form-data; boundary=" + "a" * 100, b"hello"),
    "a body cut off inside a part": (MULTIPART, b"--abc\r\n" + part("purpose", b"batch")[7:-2]),
    "a part header without a colon": (MULTIPART, b"--abc\r\nno colon here\r\n\r\nx\r\n--abc--\r\n"),
    "a 10,000-character filename": (
        MULTIPART,
        form(BATCH, part("file", b"{}\n", filename="x" * 10_000)),
    ),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_a_malformed_upload_is_400_in_the_error_shape(case: str) -> None:
    """A body that is not well-formed multipart is the client's error: 400, not 500."""
    content_type, body = MALFORMED[case]
    async with Emulator() as emu:
        status, answer = await send_raw(emu, "/files", content_type, body)
        files = emu.state.files.files
    assert 400 == status, answer
    assert_error(answer)
    assert {} == files


@pytest.mark.asyncio
async def test_a_purpose_in_an_unknown_charset_or_not_utf8_is_400_naming_purpose() -> None:
    """A field that cannot be read as text names itself in a 400."""
    async with Emulator() as emu:
        unknown = await send_raw(
            emu,
            "/files",
            MULTIPART,
            form(
                part("purpose", b"batch", headers="Content-Type: text/plain; charset=nope\r\n"),
                GOOD_FILE,
            ),
        )
        not_utf8 = await send_raw(
            emu, "/files", MULTIPART, form(part("purpose", b"\xff\xfe"), GOOD_FILE)
        )
    for status, answer in (unknown, not_utf8):
        assert 400 == status, answer
        assert_error(answer, param="purpose")


@pytest.mark.asyncio
async def test_a_well_formed_raw_upload_still_succeeds() -> None:
    """The raw helper's own well-formed body is accepted (the cases above fail for their fault)."""
    async with Emulator() as emu:
        status, answer = await send_raw(emu, "/files", MULTIPART, form(BATCH, GOOD_FILE))
    assert 200 == status, answer
    assert ("data.jsonl", 9, "batch") == (answer["filename"], answer["bytes"], answer["purpose"])


# --- size limits -------------------------------------------------------------------------------


def test_limits_default_to_the_apis_upload_limit_and_a_small_json_cap() -> None:
    """512 MB a file (the Files API's limit), 1 MiB a JSON body, 10,000 logged requests."""
    assert (512 * 1024 * 1024, 1024 * 1024, 10_000) == (
        Limits().file_bytes,
        Limits().json_bytes,
        Limits().request_log,
    )


@pytest.mark.parametrize("field", ["file_bytes", "json_bytes", "request_log"])
@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_limits_must_be_positive_integers(field: str, value: object) -> None:
    """A limit of 0, a negative, a float or a bool is refused when the record is made."""
    with pytest.raises(ValueError, match=f"Limits.{field} must be a positive integer"):
        Limits(**{field: value})  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_a_file_over_the_limit_is_413_and_leaves_nothing_on_disk() -> None:
    """One byte over ``file_bytes`` is 413 with the error shape; exactly the limit is fine."""
    async with (
        Emulator(limits=Limits(file_bytes=1000)) as emu,
        aiohttp.ClientSession(headers=AUTH) as http,
    ):
        answers = []
        for size in (1000, 1001):
            data = aiohttp.FormData()
            data.add_field("purpose", "batch")
            data.add_field("file", io.BytesIO(b"x" * size), filename="big.jsonl")
            async with http.post(emu.url + "/files", data=data) as resp:
                answers.append((resp.status, orjson.loads(await resp.read())))
        directory = emu.state.files.path_for("probe").parent
        on_disk = sorted(p.name for p in directory.iterdir())
        kept = list(emu.state.files.files)
    (ok_status, ok), (big_status, big) = answers
    assert (200, 1000) == (ok_status, ok["bytes"])
    assert 413 == big_status
    assert "request_too_large" == assert_error(big)["code"]
    assert [ok["id"]] == kept == on_disk


@pytest.mark.asyncio
async def test_an_upload_declaring_a_body_far_over_the_limit_is_413_before_it_is_read() -> None:
    """A Content-Length beyond the limit (and the form's overhead) is refused up front."""
    async with Emulator(limits=Limits(file_bytes=10)) as emu:
        reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
        writer.write(
            b"POST /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test\r\n"
            b"Content-Type: multipart/form-data; boundary=abc\r\n"
            b"Content-Length: 5000000000\r\n\r\n--abc\r\n"
        )
        await writer.drain()
        # No body beyond the first line is ever sent: the answer cannot wait for it.
        head = await asyncio.wait_for(reader.readuntil(b"\r\n"), BOUND)
        writer.close()
    assert head.startswith(b"HTTP/1.1 413 ")


@pytest.mark.asyncio
async def test_a_json_body_over_the_limit_is_413_in_the_error_shape() -> None:
    """A create body past ``json_bytes`` is 413; one under it is judged on its contents."""
    async with Emulator(limits=Limits(json_bytes=100)) as emu:
        padded = b'{"model": "gpt-4o-mini", "pad": "' + b"x" * 200 + b'"}'
        over = await send_raw(emu, "/fine_tuning/jobs", "application/json", padded)
        under = await send_raw(emu, "/fine_tuning/jobs", "application/json", b'{"model": 1}')
    assert 413 == over[0], over
    assert "request_too_large" == assert_error(over[1])["code"]
    assert 400 == under[0]
    assert_error(under[1], param="model")


@pytest.mark.asyncio
async def test_a_chunked_json_body_over_the_limit_is_413() -> None:
    """Without a Content-Length the limit holds while the body is read."""
    async with Emulator(limits=Limits(json_bytes=100)) as emu:
        reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
        chunk = b"x" * 300
        writer.write(
            b"POST /v1/batches HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n" + f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n0\r\n\r\n"
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), BOUND)
        writer.close()
    status = int(answer.split(b" ", 2)[1])
    assert 413 == status
    assert_error(orjson.loads(answer.partition(b"\r\n\r\n")[2]))


@pytest.mark.asyncio
async def test_a_form_field_over_64_kib_is_413() -> None:
    """A text field is read into memory, so it has a small cap of its own."""
    async with Emulator() as emu:
        status, answer = await send_raw(
            emu, "/files", MULTIPART, form(part("purpose", b"x" * 70_000), GOOD_FILE)
        )
    assert 413 == status
    assert_error(answer)
