"""The rendered ticket is a real, readable QR code: a real decoder (zxing-cpp) reads the PNG back
to the token, and the token still verifies; also after scaling down as a phone screenshot might."""

from __future__ import annotations

import io

import zxingcpp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

from services.common.contracts.notifier import PNG_SIGNATURE
from services.ticketing import qr
from services.ticketing import token as tokens

from .test_token import CLAIMS


def decode(png: bytes, scale: float = 1.0) -> list[str]:
    image = Image.open(io.BytesIO(png)).convert("L")
    if scale != 1.0:
        image = image.resize((int(image.width * scale), int(image.height * scale)))
    return [
        r.text for r in zxingcpp.read_barcodes(image) if r.format == zxingcpp.BarcodeFormat.QRCode
    ]


def test_png_decodes_back_to_a_token_that_verifies() -> None:
    key = Ed25519PrivateKey.generate()
    token = tokens.sign(CLAIMS, key)
    png = qr.render_png(token)
    assert png.startswith(PNG_SIGNATURE)
    assert len(png) < 10_000
    [read] = decode(png)
    assert read == token
    assert tokens.read(read, key.public_key()) == CLAIMS


def test_error_correction_m_and_quiet_zone() -> None:
    token = tokens.sign(CLAIMS, Ed25519PrivateKey.generate())
    [result] = zxingcpp.read_barcodes(Image.open(io.BytesIO(qr.render_png(token))))
    assert result.ec_level == "M"
    image = Image.open(io.BytesIO(qr.render_png(token))).convert("L")
    border = qr.BOX_PIXELS * qr.QUIET_ZONE_MODULES
    assert {image.getpixel((x, y)) for x in range(border) for y in range(image.height)} == {255}


def test_still_readable_at_half_size() -> None:
    token = tokens.sign(CLAIMS, Ed25519PrivateKey.generate())
    assert decode(qr.render_png(token), scale=0.5) == [token]
