"""The rendered ticket is a real, readable QR code: a real decoder (zxing-cpp) reads the PNG back
to the token, and the token still verifies; also after scaling down as a phone screenshot might.
The encoder's modules are those of a reference encoder (`qrcode`) for every version, and the PNG
is a well-formed 1-bit greyscale image."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
import qrcode
import zxingcpp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image
from qrcode.util import MODE_8BIT_BYTE, QRData

from services.common.contracts.notifier import PNG_SIGNATURE
from services.ticketing import qr
from services.ticketing import token as tokens

from .test_token import CLAIMS


def decode(png: bytes, scale: float = 1.0) -> list[zxingcpp.Result]:
    image = Image.open(io.BytesIO(png)).convert("L")
    if scale != 1.0:
        image = image.resize((int(image.width * scale), int(image.height * scale)))
    return [r for r in zxingcpp.read_barcodes(image) if r.format == zxingcpp.BarcodeFormat.QRCode]


def ticket_token() -> str:
    return tokens.sign(CLAIMS, Ed25519PrivateKey.generate())


def test_png_decodes_back_to_a_token_that_verifies() -> None:
    key = Ed25519PrivateKey.generate()
    token = tokens.sign(CLAIMS, key)
    png = qr.render_png(token)
    assert png.startswith(PNG_SIGNATURE)
    assert len(png) < 10_000
    [read] = decode(png)
    assert read.text == token
    assert tokens.read(read.text, key.public_key()) == CLAIMS


def test_error_correction_m_version_mask_and_quiet_zone() -> None:
    token = ticket_token()
    [result] = decode(qr.render_png(token))
    assert result.ec_level == "M"
    assert result.extra["Version"] == str(qr.version_for(len(token))) == "15"
    assert result.extra["DataMask"] == qr.MASK_PATTERN
    image = Image.open(io.BytesIO(qr.render_png(token))).convert("L")
    border = qr.BOX_PIXELS * qr.QUIET_ZONE_MODULES
    assert {image.getpixel((x, y)) for x in range(border) for y in range(image.height)} == {255}
    assert result.position.top_left.x == result.position.top_left.y == border


def test_still_readable_at_half_size() -> None:
    token = ticket_token()
    assert [r.text for r in decode(qr.render_png(token), scale=0.5)] == [token]


@pytest.mark.parametrize("length", [1, 17, 100, 411, 412, 413, 1000, 2331])
def test_any_length_decodes_back_exactly(length: int) -> None:
    text = (ticket_token() * 7)[:length]
    assert [r.text for r in decode(qr.render_png(text))] == [text]


def test_too_long_for_any_version_is_refused() -> None:
    with pytest.raises(ValueError):
        qr.render_png("x" * 2332)


def reference(text: str) -> tuple[int, list[bytes]]:
    """The same text by `qrcode`: byte mode, level M, the same mask."""
    code = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M, border=0, mask_pattern=qr.MASK_PATTERN
    )
    code.add_data(QRData(text.encode(), mode=MODE_8BIT_BYTE))
    code.make(fit=True)
    return code.version, [bytes(bool(m) for m in row) for row in code.modules]


@pytest.mark.parametrize("version", range(1, 41))
def test_modules_match_a_reference_encoder(version: int) -> None:
    """Every version's layout (finders, alignment, timing, format and version information, the
    zigzag, the blocks' interleaving and Reed-Solomon), full and part-filled (padding)."""
    capacity = qr.capacity(version)
    for length in {capacity, capacity - capacity // 3}:
        text = (ticket_token() * 7)[:length]
        code = qr.matrix(text)
        quiet = qr.QUIET_ZONE_MODULES
        modules = [row[quiet:-quiet] for row in code.rows()[quiet:-quiet]]
        assert (code.version, modules) == reference(text), (version, length)


def test_png_is_a_well_formed_one_bit_greyscale_image() -> None:
    code = qr.matrix(ticket_token())
    png = qr.png(code)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = [], 8
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        kind, body = png[at + 4 : at + 8], png[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", png[at + 8 + length : at + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        chunks.append((kind, body))
        at += 12 + length
    assert [kind for kind, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    width = code.side * qr.BOX_PIXELS
    # width, height, bit depth 1, colour type 0 (greyscale), deflate, filter set 0, no interlace
    assert struct.unpack(">IIBBBBB", chunks[0][1]) == (width, width, 1, 0, 0, 0, 0)
    assert len(zlib.decompress(chunks[1][1])) == width * (1 + width // 8)
    # Every module is an 8 x 8 block of one colour: black where the matrix is dark.
    image = Image.open(io.BytesIO(png))
    assert (image.mode, image.size) == ("1", (width, width))
    pixels = image.convert("L").tobytes()
    for y, row in enumerate(code.rows()):
        for x, dark in enumerate(row):
            block = {
                pixels[(y * 8 + dy) * width + x * 8 + dx] for dy in range(8) for dx in range(8)
            }
            assert block == {0 if dark else 255}, (x, y)
