"""The ticket token: a compact JWS signed with Ed25519 that a scanner verifies offline, and that
fails as `Forged` on any change, another key, another algorithm or garbage."""

from __future__ import annotations

import base64
import json
import secrets

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.ticketing import token as tokens

CLAIMS = tokens.Claims(
    jti="q1w2e3r4t5y6u7i8",
    code="7K3MX9QP",
    bid=123456,
    dose=1,
    fac="F3201001",
    day="2021-01-14",
    t="08:00-12:00",
    nm="S*** R********",
    exp=1610643600,
    iat=1610550000,
)


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def test_round_trip_gives_back_the_claims(key: Ed25519PrivateKey) -> None:
    token = tokens.sign(CLAIMS, key)
    assert tokens.read(token, key.public_key()) == CLAIMS
    assert tokens.read(f"  {token}\n", key.public_key()) == CLAIMS  # as a scanner may add
    assert len(token) < 400


def test_header_names_the_algorithm_and_key(key: Ed25519PrivateKey) -> None:
    header = json.loads(base64.urlsafe_b64decode(tokens.sign(CLAIMS, key).split(".")[0] + "=="))
    assert header == {"alg": "EdDSA", "kid": tokens.key_id(key.public_key())}


@pytest.mark.parametrize("part", [0, 1, 2])
def test_every_changed_byte_is_forged(key: Ed25519PrivateKey, part: int) -> None:
    token = tokens.sign(CLAIMS, key)
    pieces = token.split(".")
    for i in range(len(pieces[part])):
        changed = list(pieces)
        original = changed[part][i]
        changed[part] = (
            changed[part][:i] + ("A" if original != "A" else "B") + changed[part][i + 1 :]
        )
        with pytest.raises(tokens.Forged):
            tokens.read(".".join(changed), key.public_key())


def test_another_spelling_of_the_signature_is_forged(key: Ed25519PrivateKey) -> None:
    """86 base64 characters carry 64 bytes and 4 spare bits: setting those is not a new token."""
    header, payload, signature = tokens.sign(CLAIMS, key).split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(signature[-1])
    for spare in range(1, 16):
        respelled = signature[:-1] + alphabet[last ^ spare]
        with pytest.raises(tokens.Forged):
            tokens.read(f"{header}.{payload}.{respelled}", key.public_key())


def test_changed_claims_resigned_by_another_key_are_forged(key: Ed25519PrivateKey) -> None:
    other = Ed25519PrivateKey.generate()
    with pytest.raises(tokens.Forged):
        tokens.read(tokens.sign(CLAIMS, other), key.public_key())


def test_another_key_with_our_key_id_is_forged(key: Ed25519PrivateKey) -> None:
    """The key id is public: copying it into a token signed by another key changes nothing."""
    other = Ed25519PrivateKey.generate()
    header = (
        base64.urlsafe_b64encode(
            json.dumps({"alg": "EdDSA", "kid": tokens.key_id(key.public_key())}).encode()
        )
        .rstrip(b"=")
        .decode()
    )
    _, payload, _ = tokens.sign(CLAIMS, other).split(".")
    signature = base64.urlsafe_b64encode(other.sign(f"{header}.{payload}".encode())).rstrip(b"=")
    with pytest.raises(tokens.Forged):
        tokens.read(f"{header}.{payload}.{signature.decode()}", key.public_key())


def test_alg_none_is_forged(key: Ed25519PrivateKey) -> None:
    def b64(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    header = b64({"alg": "none", "kid": tokens.key_id(key.public_key())})
    payload = b64(CLAIMS.__dict__)
    for token in (f"{header}.{payload}.", f"{header}.{payload}"):
        with pytest.raises(tokens.Forged):
            tokens.read(token, key.public_key())


@pytest.mark.parametrize(
    "garbage",
    ["", "hello", "a.b.c", "a.b.c.d", "....", "é.é.é", "x" * 5000, "https://example.org/?t=1"],
)
def test_garbage_is_forged(key: Ed25519PrivateKey, garbage: str) -> None:
    with pytest.raises(tokens.Forged):
        tokens.read(garbage, key.public_key())


def test_signing_key_from_seed_and_from_pem_sign_alike() -> None:
    seed = secrets.token_urlsafe(32)  # what `vaksin up` generates into DATA_DIR
    from_seed = tokens.load_signing_key(seed)
    pem = from_seed.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    from_pem = tokens.load_signing_key(pem)
    assert tokens.sign(CLAIMS, from_seed) == tokens.sign(CLAIMS, from_pem)  # Ed25519: deterministic
    jwk = tokens.public_jwk(from_pem.public_key())
    assert (jwk["kty"], jwk["crv"], jwk["alg"]) == ("OKP", "Ed25519", "EdDSA")
    assert tokens.public_pem(from_pem.public_key()).startswith("-----BEGIN PUBLIC KEY-----")


@pytest.mark.parametrize(
    "bad", ["", "short", "-----BEGIN PRIVATE KEY-----\nnope\n-----END", "A" * 44]
)
def test_unusable_signing_key_is_refused_clearly(bad: str) -> None:
    with pytest.raises(tokens.InvalidSigningKey, match="TICKET_SIGNING_KEY"):
        tokens.load_signing_key(bad)
