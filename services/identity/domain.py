"""Identity rules, pure and without IO: NIK structure, Indonesian mobile numbers, masking, keyed
hashes, the suffix lockout, parsing the registry CSV, and checking an intake request.

The last 6 digits of a NIK are `YY + SSSS`, guessable in about 10^4 tries, so they are a matching
key, never an authenticator: a suffix only counts when it matches a registry entry bound to the
sender's own number, and consecutive failures lock the number (reference/performance-and-
reliability.md section 5). Nothing here keeps a raw NIK or phone beyond the value being processed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from services.common.contracts.identity import PROFESSIONS, Profession, VerifyOutcome
from services.common.csvfile import RowError, parse_csv

# Province codes (Kemendagri) of the 38 provinces since the 2022 Papua split. The table is
# versioned by nature (34 in 2021), and a NIK keeps the code of its first registration, so an
# unknown code is flagged, never rejected (reference/peers-and-domain.md section 7.1).
PROVINCES: dict[str, str] = {
    "11": "Aceh",
    "12": "Sumatera Utara",
    "13": "Sumatera Barat",
    "14": "Riau",
    "15": "Jambi",
    "16": "Sumatera Selatan",
    "17": "Bengkulu",
    "18": "Lampung",
    "19": "Kepulauan Bangka Belitung",
    "21": "Kepulauan Riau",
    "31": "DKI Jakarta",
    "32": "Jawa Barat",
    "33": "Jawa Tengah",
    "34": "DI Yogyakarta",
    "35": "Jawa Timur",
    "36": "Banten",
    "51": "Bali",
    "52": "Nusa Tenggara Barat",
    "53": "Nusa Tenggara Timur",
    "61": "Kalimantan Barat",
    "62": "Kalimantan Tengah",
    "63": "Kalimantan Selatan",
    "64": "Kalimantan Timur",
    "65": "Kalimantan Utara",
    "71": "Sulawesi Utara",
    "72": "Sulawesi Tengah",
    "73": "Sulawesi Selatan",
    "74": "Sulawesi Tenggara",
    "75": "Gorontalo",
    "76": "Sulawesi Barat",
    "81": "Maluku",
    "82": "Maluku Utara",
    "91": "Papua",
    "92": "Papua Barat",
    "93": "Papua Selatan",
    "94": "Papua Tengah",
    "95": "Papua Pegunungan",
    "96": "Papua Barat Daya",
}

_DIGITS = re.compile(r"[0-9]+")
_SEPARATORS = re.compile(r"[\s.\-()]")
_SUFFIX = re.compile(r"[0-9]{6}")
_FACILITY_CODE = re.compile(r"[A-Za-z0-9._-]{1,32}")


# --- NIK -------------------------------------------------------------------------------------


class InvalidNik(ValueError):
    """A NIK that cannot be right. `code` is stable for programs; `detail` is for people."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class NikInfo:
    nik: str = field(repr=False)  # normalised 16 digits; repr=False keeps it out of logs/tracebacks
    province_code: str
    regency_code: str
    district_code: str
    birth_date: date
    sex: str  # "F" or "M"
    serial: str
    unknown_region: bool

    @property
    def suffix(self) -> str:
        """The last 6 digits (`YY + SSSS`) that the chatbot asks for."""
        return self.nik[-6:]


def validate_nik(raw: str, *, today: date | None = None) -> NikInfo:
    """Check the structure `PP KK CC DD MM YY SSSS`; spaces, dots and dashes are ignored.

    There is no check digit: a structurally valid NIK may still belong to nobody (or to someone
    else after a typo), which only the registry can tell.
    """
    today = today or date.today()
    nik = _SEPARATORS.sub("", raw or "")
    if not nik:
        raise InvalidNik("length", "the NIK is empty; it has 16 digits")
    if not _DIGITS.fullmatch(nik):
        raise InvalidNik("not_digits", "a NIK contains digits only")
    if len(nik) != 16:
        raise InvalidNik("length", f"a NIK has 16 digits, this one has {len(nik)}")
    day, month, yy, serial = int(nik[6:8]), int(nik[8:10]), int(nik[10:12]), nik[12:]
    if not 1 <= month <= 12:
        raise InvalidNik("month", f"digits 9-10 are the birth month; {nik[8:10]} is not 01-12")
    if 1 <= day <= 31:
        sex = "M"
    elif 41 <= day <= 71:
        sex, day = "F", day - 40
    else:
        raise InvalidNik(
            "day",
            f"digits 7-8 are the birth day (01-31, or 41-71 for women); {nik[6:8]} is neither",
        )
    century = 1900 if yy > today.year % 100 else 2000
    try:
        birth = date(century + yy, month, day)
    except ValueError:
        raise InvalidNik(
            "date", f"birth date {day:02d}-{month:02d}-{century + yy} does not exist"
        ) from None
    if birth > today:
        raise InvalidNik("date", f"birth date {birth.isoformat()} is in the future")
    if serial == "0000":
        raise InvalidNik("serial", "the last 4 digits are a serial number starting at 0001")
    return NikInfo(
        nik=nik,
        province_code=nik[:2],
        regency_code=nik[2:4],
        district_code=nik[4:6],
        birth_date=birth,
        sex=sex,
        serial=serial,
        unknown_region=nik[:2] not in PROVINCES,
    )


def normalize_suffix(raw: str) -> str | None:
    """The 6 NIK digits as typed (spaces allowed), or None when it is not exactly 6 digits."""
    suffix = re.sub(r"\s", "", raw or "")
    return suffix if _SUFFIX.fullmatch(suffix) else None


# --- phone numbers ---------------------------------------------------------------------------


class InvalidPhone(ValueError):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def normalize_phone(raw: str) -> str:
    """An Indonesian mobile number as WhatsApp's `wa_id` spells it: `628...`, digits only.

    Accepts `08..`, `+62..`, `62..` (and `+62 0812..`), with spaces, dashes, dots or brackets.
    """
    phone = _SEPARATORS.sub("", raw or "")
    if not phone:
        raise InvalidPhone("empty", "no phone number given")
    if phone.startswith("+"):
        phone = phone[1:]
        if not phone.startswith("62"):
            raise InvalidPhone("country", "only Indonesian numbers (+62) are accepted")
    if not _DIGITS.fullmatch(phone):
        raise InvalidPhone("characters", "a phone number contains digits only")
    if phone.startswith("0"):
        phone = "62" + phone[1:]
    elif phone.startswith("620"):  # "+62 (0)812...": the trunk 0 written after the country code
        phone = "62" + phone[3:]
    if not phone.startswith("62"):
        raise InvalidPhone("country", "an Indonesian number starts with 08, +62 or 62")
    if not phone.startswith("628"):
        raise InvalidPhone("not_mobile", "an Indonesian mobile number starts with 08 (or +628)")
    if not 10 <= len(phone) <= 15:
        raise InvalidPhone(
            "length",
            f"a mobile number has 10-15 digits with 62 in front, this one has {len(phone)}",
        )
    return phone


# --- masking ---------------------------------------------------------------------------------


def mask_name(name: str) -> str:
    """`Siti Rahmawati` -> `S*** R*********`: enough for the owner to recognise, little more."""
    return " ".join(word[0] + "*" * (len(word) - 1) for word in name.split())


def mask_nik(nik: str) -> str:
    """Only the region (first 6 digits) stays: the last 6 are what the user proves knowledge of."""
    return nik[:6] + "*" * (len(nik) - 6)


def mask_phone(phone: str) -> str:
    """`6281234567890` -> `62812*****890`."""
    return phone[:5] + "*" * (len(phone) - 8) + phone[-3:]


# --- keyed hashes ----------------------------------------------------------------------------

# Domain separation: the same input hashed for different purposes gives unrelated values, so a
# NIK hash can never be matched against a phone hash or a suffix hash.
_NIK_DOMAIN = b"vaksin/identity/nik/v1"
_PHONE_DOMAIN = b"vaksin/identity/phone/v1"
_SUFFIX_DOMAIN = b"vaksin/identity/suffix/v1"


def _keyed(pepper: str, domain: bytes, *parts: str) -> str:
    if not pepper:
        raise ValueError("NIK_PEPPER is empty: refusing to hash personal data without a key")
    message = domain + b"\x00" + b"\x00".join(p.encode() for p in parts)
    return hmac.new(pepper.encode(), message, hashlib.sha256).hexdigest()


def nik_hash(pepper: str, nik: str) -> str:
    """Of a normalised 16-digit NIK (`NikInfo.nik`)."""
    return _keyed(pepper, _NIK_DOMAIN, nik)


def phone_hash(pepper: str, phone: str) -> str:
    """Of a normalised `628...` number (`normalize_phone`)."""
    return _keyed(pepper, _PHONE_DOMAIN, phone)


def suffix_hash(pepper: str, phone: str, suffix: str) -> str:
    """Binds the NIK suffix to the registered number: only that number can present it."""
    return _keyed(pepper, _SUFFIX_DOMAIN, phone, suffix)


def suffix_matches(stored_hash: str, computed_hash: str) -> bool:
    return hmac.compare_digest(stored_hash.encode(), computed_hash.encode())


# --- lockout ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LockPolicy:
    max_failures: int = 5
    duration: timedelta = timedelta(hours=24)


@dataclass(frozen=True)
class LockState:
    """Consecutive failed suffixes of one number, and the end of its lock if it is locked."""

    failures: int = 0
    locked_until: datetime | None = None

    def current(self, now: datetime) -> LockState:
        """The state as of `now`: an expired lock starts the count afresh."""
        if self.locked_until is not None and self.locked_until <= now:
            return LockState()
        return self

    def is_locked(self, now: datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now

    def attempts_left(self, policy: LockPolicy, now: datetime) -> int:
        return max(policy.max_failures - self.current(now).failures, 0)

    def after_failure(self, policy: LockPolicy, now: datetime) -> LockState:
        failures = self.current(now).failures + 1
        if failures >= policy.max_failures:
            return LockState(failures, now + policy.duration)
        return LockState(failures, None)

    def after_success(self) -> LockState:
        return LockState()


@dataclass(frozen=True)
class VerifyDecision:
    outcome: VerifyOutcome
    state: LockState  # what to store for the number afterwards
    attempts_left: int | None = None
    locked_until: datetime | None = None


def decide_verification(
    *, suffix_valid: bool, matched: bool, state: LockState, policy: LockPolicy, now: datetime
) -> VerifyDecision:
    """The outcome of a suffix presented by a listed number, and the lock state to keep.

    While locked even the right suffix is refused; a suffix that is not 6 digits is a typo, not a
    guess, and costs no attempt.
    """
    state = state.current(now)
    if state.is_locked(now):
        return VerifyDecision(VerifyOutcome.LOCKED, state, 0, state.locked_until)
    if not suffix_valid:
        return VerifyDecision(VerifyOutcome.INVALID, state, state.attempts_left(policy, now))
    if matched:
        return VerifyDecision(VerifyOutcome.VERIFIED, state.after_success())
    failed = state.after_failure(policy, now)
    if failed.is_locked(now):
        return VerifyDecision(VerifyOutcome.LOCKED, failed, 0, failed.locked_until)
    return VerifyDecision(VerifyOutcome.MISMATCH, failed, failed.attempts_left(policy, now))


# --- registry CSV ----------------------------------------------------------------------------

REGISTRY_HEADER = ("nik", "name", "phone", "profession", "facility_code")
MAX_NAME = 100
MAX_PROFESSION = 100


@dataclass(frozen=True)
class RegistryRow:
    line: int
    nik: NikInfo
    name: str
    phone: str = field(repr=False)
    profession: str
    facility_code: str


@dataclass(frozen=True)
class PersonRecord:
    """A registry row as stored: hashes and masked forms, never the raw NIK or phone."""

    nik_hash: str
    masked_nik: str
    name: str
    masked_name: str
    phone_hash: str
    masked_phone: str
    suffix_hash: str
    profession: str
    facility_code: str
    birth_date: date  # from the NIK: screening's age rules need it, so the user is not asked
    sex: str


def person_record(pepper: str, row: RegistryRow) -> PersonRecord:
    return PersonRecord(
        nik_hash=nik_hash(pepper, row.nik.nik),
        masked_nik=mask_nik(row.nik.nik),
        name=row.name,
        masked_name=mask_name(row.name),
        phone_hash=phone_hash(pepper, row.phone),
        masked_phone=mask_phone(row.phone),
        suffix_hash=suffix_hash(pepper, row.phone, row.nik.suffix),
        profession=row.profession,
        facility_code=row.facility_code,
        birth_date=row.nik.birth_date,
        sex=row.nik.sex,
    )


def _clean(value: str) -> str:
    return " ".join(value.split())


def _parse_row(
    line: int, cells: Sequence[str], today: date, first_line_of: dict[object, int]
) -> tuple[RegistryRow | None, list[str]]:
    # parse_csv has checked the number of fields.
    raw_nik, raw_name, raw_phone, raw_profession, raw_facility = cells
    problems: list[str] = []
    nik: NikInfo | None = None
    phone = ""
    try:
        nik = validate_nik(raw_nik, today=today)
    except InvalidNik as e:
        problems.append(f"nik: {e.detail}")
    else:
        first = first_line_of.setdefault(nik.nik, line)
        if first != line:
            problems.append(f"nik: duplicate of line {first}")
    name = _clean(raw_name)
    if not name:
        problems.append("name: empty")
    elif len(name) > MAX_NAME:
        problems.append(f"name: longer than {MAX_NAME} characters")
    try:
        phone = normalize_phone(raw_phone)
    except InvalidPhone as e:
        problems.append(f"phone: {e.detail}")
    profession = _clean(raw_profession)
    if not profession:
        problems.append("profession: empty")
    elif len(profession) > MAX_PROFESSION:
        problems.append(f"profession: longer than {MAX_PROFESSION} characters")
    facility = raw_facility.strip()
    if not facility:
        problems.append("facility_code: empty")
    elif not _FACILITY_CODE.fullmatch(facility):
        problems.append("facility_code: 1-32 characters of A-Z, a-z, 0-9, '.', '_' or '-'")
    if problems or nik is None:
        return None, problems
    return RegistryRow(line, nik, name, phone, profession, facility), []


def parse_registry_csv(
    text: str,
    *,
    today: date | None = None,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 10_000,
) -> tuple[list[RegistryRow], list[RowError]]:
    """Every row of a registry file, or every problem with its 1-based line number.

    Blank lines are skipped. A NIK that appears twice is an error on its second line, since one of
    the two rows is wrong and we cannot tell which.
    """
    today = today or date.today()

    def parse_row(
        line: int, cells: Sequence[str], first_line_of: dict[object, int]
    ) -> tuple[RegistryRow | None, list[str]]:
        return _parse_row(line, cells, today, first_line_of)

    return parse_csv(text, REGISTRY_HEADER, parse_row, progress, progress_every)


# --- intake of unlisted health workers -------------------------------------------------------

MAX_REASON = 500
INTAKE_LANGS = ("id", "en")
# A name on a KTP: letters (any script), spaces, and the punctuation names carry. Digits mean the
# user typed something else (often the NIK) into the name.
_NAME_CHARS = re.compile(r"[^\W\d_]|[ .,'\-]")


class InvalidIntake(ValueError):
    """A field of an intake request that cannot be right: `field` names it, `code` says why (for a
    NIK, the code of `InvalidNik`), `detail` is for people."""

    def __init__(self, field_: str, code: str, detail: str) -> None:
        super().__init__(f"{field_}: {code}: {detail}")
        self.field = field_
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class IntakeDraft:
    """An intake request whose every field is checked and normalised."""

    nik: NikInfo
    phone: str = field(repr=False)
    name: str
    profession: Profession
    facility_code: str
    lang: str

    @property
    def regency_code(self) -> str:
        return self.nik.province_code + self.nik.regency_code


def clean_full_name(raw: str) -> str:
    """The name as on the KTP with runs of spaces collapsed, or InvalidIntake."""
    name = _clean(raw or "")
    if not name:
        raise InvalidIntake("full_name", "empty", "the full name is empty")
    if len(name) > MAX_NAME:
        raise InvalidIntake("full_name", "too_long", f"longer than {MAX_NAME} characters")
    if not all(_NAME_CHARS.fullmatch(c) for c in name):
        raise InvalidIntake(
            "full_name", "characters", "a name has letters, spaces and . , ' - only"
        )
    if not any(c.isalpha() for c in name):
        raise InvalidIntake("full_name", "characters", "a name has letters")
    return name


def check_intake(
    *,
    wa_id: str,
    nik: str,
    full_name: str,
    profession: str,
    facility_code: str,
    lang: str,
    today: date | None = None,
) -> IntakeDraft:
    """Every field of a submitted request, in the order the chat asks them; the first problem
    is raised as InvalidIntake."""
    try:
        phone = normalize_phone(wa_id)
    except InvalidPhone as e:
        raise InvalidIntake("wa_id", e.code, e.detail) from None
    try:
        info = validate_nik(nik, today=today)
    except InvalidNik as e:
        raise InvalidIntake("nik", e.code, e.detail) from None
    name = clean_full_name(full_name)
    chosen = next((p for p in PROFESSIONS if p.id == profession), None)
    if chosen is None:
        raise InvalidIntake("profession", "unknown", "not one of the listed profession ids")
    facility = (facility_code or "").strip()
    if not _FACILITY_CODE.fullmatch(facility):
        raise InvalidIntake(
            "facility_code", "format", "1-32 characters of A-Z, a-z, 0-9, '.', '_' or '-'"
        )
    return IntakeDraft(info, phone, name, chosen, facility, lang if lang in INTAKE_LANGS else "id")


def clean_reason(raw: str | None) -> str:
    """An operator's reason for a rejection: required, one paragraph, at most MAX_REASON."""
    reason = _clean(raw or "")
    if not reason:
        raise ValueError("a reason is required")
    if len(reason) > MAX_REASON:
        raise ValueError(f"the reason is longer than {MAX_REASON} characters")
    return reason


@dataclass(frozen=True)
class IntakeRecord:
    """An intake request as stored: hashes and masked forms, never the raw NIK; the raw number
    (`wa_id`) only until the decision is announced."""

    nik_hash: str
    masked_nik: str
    suffix_hash: str
    birth_date: date
    sex: str
    regency_code: str
    unknown_region: bool
    name: str = field(repr=False)
    masked_name: str
    profession: str
    facility_code: str
    phone_hash: str
    masked_phone: str
    wa_id: str = field(repr=False)
    lang: str


def intake_record(pepper: str, draft: IntakeDraft) -> IntakeRecord:
    return IntakeRecord(
        nik_hash=nik_hash(pepper, draft.nik.nik),
        masked_nik=mask_nik(draft.nik.nik),
        suffix_hash=suffix_hash(pepper, draft.phone, draft.nik.suffix),
        birth_date=draft.nik.birth_date,
        sex=draft.nik.sex,
        regency_code=draft.regency_code,
        unknown_region=draft.nik.unknown_region,
        name=draft.name,
        masked_name=mask_name(draft.name),
        profession=draft.profession.id,
        facility_code=draft.facility_code,
        phone_hash=phone_hash(pepper, draft.phone),
        masked_phone=mask_phone(draft.phone),
        wa_id=draft.phone,
        lang=draft.lang,
    )


def profession_label(profession_id: str) -> str:
    """The registry's (Indonesian) label of a profession id; an unknown id is kept as it is."""
    return next((p.id_label for p in PROFESSIONS if p.id == profession_id), profession_id)


def approved_person(intake: IntakeRecord) -> PersonRecord:
    """The registry entry an approved request becomes: bound to the number that asked."""
    return PersonRecord(
        nik_hash=intake.nik_hash,
        masked_nik=intake.masked_nik,
        name=intake.name,
        masked_name=intake.masked_name,
        phone_hash=intake.phone_hash,
        masked_phone=intake.masked_phone,
        suffix_hash=intake.suffix_hash,
        profession=profession_label(intake.profession),
        facility_code=intake.facility_code,
        birth_date=intake.birth_date,
        sex=intake.sex,
    )
