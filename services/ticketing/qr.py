"""The ticket as a QR code PNG: error correction M (15% of the code may be smudged or covered),
the standard 4-module quiet zone, and 8 pixels per module (a 600-700 px square for a ticket
token): sharp on a phone screen and when printed, and a PNG of a few kilobytes."""

from __future__ import annotations

import io

import qrcode
from qrcode.constants import ERROR_CORRECT_M

BOX_PIXELS = 8
QUIET_ZONE_MODULES = 4


def render_png(token: str) -> bytes:
    qr = qrcode.QRCode(
        error_correction=ERROR_CORRECT_M, box_size=BOX_PIXELS, border=QUIET_ZONE_MODULES
    )
    qr.add_data(token)
    qr.make(fit=True)
    buffer = io.BytesIO()
    qr.make_image().save(buffer, format="PNG")
    return buffer.getvalue()
