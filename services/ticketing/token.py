"""The QR payload: a JWS in compact serialization (RFC 7515) signed with Ed25519 (RFC 8037,
`alg: EdDSA`), `header.claims.signature`, each part base64url without padding.

Why this form: any scanner can check it offline with the public key alone (`/tickets/public-key`
serves it as a JWK and as PEM), with any JOSE library or a few lines of code; Ed25519 signatures
are small (64 bytes), deterministic and have no parameters to get wrong; and the whole token
(about 330 characters) fits a QR code of version 13-15 at error correction M, which phones read
from a screen or from paper. COSE/CWT would be some 30% smaller but few desk tools read it.

Only `EdDSA` is accepted (no `none`, no algorithm chosen by the token), and the claims are read
only after the signature checks out. A token that fails any check is `Forged`: the desk needs to
know it is not ours, not which byte is wrong.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

ALGORITHM = "EdDSA"
MAX_TOKEN_LENGTH = 2000  # ours are about 330 characters; anything far longer is not a ticket


class Forged(Exception):
    """Not a ticket token we signed (malformed, another key, or a changed byte)."""


class InvalidSigningKey(ValueError):
    pass


@dataclass(frozen=True)
class Claims:
    """What the ticket says, readable offline: short keys keep the QR code small."""

    jti: str  # ticket id
    code: str  # the short code people read aloud
    bid: int  # booking id
    dose: int
    fac: str  # facility code
    day: str  # session date, ISO
    t: str  # session time, "HH:MM-HH:MM" (WIB)
    nm: str  # masked name
    exp: int  # expiry, Unix seconds (end of the session day in Jakarta)
    iat: int  # issued at, Unix seconds

    @property
    def session_date(self) -> date:
        return date.fromisoformat(self.day)

    @property
    def session_times(self) -> tuple[time, time]:
        start, _, end = self.t.partition("-")
        return time.fromisoformat(start), time.fromisoformat(end)

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.exp, UTC)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text or any(c not in _B64URL for c in text):
        raise Forged("not base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise Forged("not base64url") from None
    if _b64(data) != text:  # unused trailing bits set: another spelling of the same bytes
        raise Forged("not canonical base64url")
    return data


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


# --- keys ---------------------------------------------------------------------------------------


def load_signing_key(value: str) -> Ed25519PrivateKey:
    """`TICKET_SIGNING_KEY`: a PEM (PKCS#8) Ed25519 private key, e.g. from `openssl genpkey
    -algorithm ed25519`, or its 32-byte seed in base64url (what `vaksin up` generates locally)."""
    value = value.strip()
    if not value:
        raise InvalidSigningKey("TICKET_SIGNING_KEY is empty")
    if value.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(value.encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise InvalidSigningKey(
                f"TICKET_SIGNING_KEY is not a readable PEM key: {exc}"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise InvalidSigningKey("TICKET_SIGNING_KEY must be an Ed25519 key")
        return key
    try:
        seed = _unb64(value)
    except Forged:
        seed = b""
    if len(seed) != 32:
        raise InvalidSigningKey(
            "TICKET_SIGNING_KEY must be a PEM Ed25519 private key or a 32-byte seed in base64url"
        )
    return Ed25519PrivateKey.from_private_bytes(seed)


def _raw_public(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public: Ed25519PublicKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256), shortened: names the key in every token's header."""
    jwk = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": _b64(_raw_public(public))},
        separators=(",", ":"),
        sort_keys=True,
    )
    return _b64(hashlib.sha256(jwk.encode()).digest())[:16]


def public_jwk(public: Ed25519PublicKey) -> dict[str, str]:
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": _b64(_raw_public(public)),
        "kid": key_id(public),
        "alg": ALGORITHM,
        "use": "sig",
    }


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


# --- tokens -------------------------------------------------------------------------------------


def _json(value: dict[str, object]) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def sign(claims: Claims, key: Ed25519PrivateKey) -> str:
    header = _b64(_json({"alg": ALGORITHM, "kid": key_id(key.public_key())}))
    payload = _b64(_json(asdict(claims)))
    signing_input = f"{header}.{payload}".encode("ascii")
    return f"{header}.{payload}.{_b64(key.sign(signing_input))}"


def read(token: str, public: Ed25519PublicKey) -> Claims:
    """The claims of a token signed by `public`'s key; `Forged` for anything else."""
    token = token.strip()
    if len(token) > MAX_TOKEN_LENGTH:
        raise Forged("too long")
    parts = token.split(".")
    if len(parts) != 3:
        raise Forged("not a compact JWS")
    header_b64, payload_b64, signature_b64 = parts
    header = _object(_unb64(header_b64))
    if header.get("alg") != ALGORITHM or header.get("kid") != key_id(public):
        raise Forged("another algorithm or key")
    try:
        public.verify(_unb64(signature_b64), f"{header_b64}.{payload_b64}".encode("ascii"))
    except InvalidSignature:
        raise Forged("bad signature") from None
    payload = _object(_unb64(payload_b64))
    try:
        return Claims(**payload)  # type: ignore[arg-type]
    except TypeError:
        raise Forged("unexpected claims") from None


def _object(data: bytes) -> dict[str, object]:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise Forged("not JSON") from None
    if not isinstance(value, dict):
        raise Forged("not a JSON object")
    return value
