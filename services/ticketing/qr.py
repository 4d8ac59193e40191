"""The ticket as a QR code PNG: error correction M (15% of the code may be smudged or covered),
the standard 4-module quiet zone, and 8 pixels per module (a 600-700 px square for a ticket
token): sharp on a phone screen and when printed, and a 1-bit PNG of about 2.3 KB.

Speed: `qrcode` is pure Python, and its search for the best of the 8 mask patterns (each laid out
and scored) took 63 ms of the 78 ms a ticket cost, about 16 tickets/s per core: far below the
booking rate. Any mask is valid and decodes the same (ISO/IEC 18004 asks for the lowest penalty
only to avoid finder-like patterns); we fix one, and draw the modules as one small image scaled
up instead of a rectangle per module: about 13 ms a ticket (`bench/tickets.py`). Tests read the
result back with a real decoder, at full and at half size. The PNG is stored with the ticket, so
sending it again (TIKET) costs no rendering.
"""

from __future__ import annotations

import io

import qrcode
from PIL import Image, ImageOps
from qrcode.constants import ERROR_CORRECT_M

BOX_PIXELS = 8
QUIET_ZONE_MODULES = 4
MASK_PATTERN = 2  # fixed: any of the eight is valid (see above)


def render_png(token: str) -> bytes:
    qr = qrcode.QRCode(
        error_correction=ERROR_CORRECT_M, box_size=1, border=0, mask_pattern=MASK_PATTERN
    )
    qr.add_data(token)
    qr.make(fit=True)
    size = qr.modules_count
    pixels = bytes(0 if dark else 255 for row in qr.modules for dark in row)
    image = Image.frombytes("L", (size, size), pixels)
    image = image.resize((size * BOX_PIXELS, size * BOX_PIXELS), Image.Resampling.NEAREST)
    image = ImageOps.expand(image, border=QUIET_ZONE_MODULES * BOX_PIXELS, fill=255)
    buffer = io.BytesIO()
    image.convert("1").save(buffer, format="PNG")
    return buffer.getvalue()
