"""Raw text rows to typed payout rows or problems. Pure: the catalog comes in as data.

Every problem names the sheet row, the column, the value seen and a sentence a finance person
understands. Safe repairs are applied and reported as warnings; warnings never block.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cache
from itertools import chain
from typing import Literal, NamedTuple

import phonenumbers
from phonenumbers import PhoneNumberType
from pydantic import TypeAdapter, ValidationError

from batch_payouts.catalog import BANK_COUNTRIES, Catalog, CountryInfo
from batch_payouts.model import CURRENCY_DIGITS, Method, MobileMoneyPayout, Payout, minor_digits

Severity = Literal["error", "warning", "held"]  # held: valid, not paid until a person accepts it (guardrails)
_PAYOUT: TypeAdapter[Payout] = TypeAdapter(Payout)
SANDBOX_ENDINGS = frozenset(
    {"700000001", "700000002", "700000010", "700000011", "700000012", "700000013", "700000020", "700000021"}
)


@dataclass(frozen=True)
class Problem:
    row: int
    column: str
    value: str
    message: str
    severity: Severity = "error"
    rule: str = ""  # the guardrail that found it (``guardrails.Rule`` value), "" for the others

    def __str__(self) -> str:
        where = f"row {self.row}" + (f", {self.column}" if self.column else "")
        seen = f" (saw {self.value!r})" if self.value else ""
        return f"{where}: {self.message}{seen}"


@dataclass(slots=True)  # one per row: no per-object dict
class RowResult:
    row: int
    cells: dict[str, str]  # canonical column -> cleaned text
    payout: Payout | None = None
    problems: list[Problem] = field(default_factory=list)
    normalised_phone: str = ""
    _copy_key: CopyKey | None = field(default=None, compare=False, repr=False)

    @property
    def valid(self) -> bool:
        if self.payout is None:
            return False
        return not self.problems or all(p.severity != "error" for p in self.problems)

    @property
    def copy_key(self) -> CopyKey:
        """What two rows share when one is an exact copy of the other: their non-empty cells, as
        column, text, column, text... in column order (one tuple a row, not one per cell)."""
        if self._copy_key is None:
            self._copy_key = tuple(chain.from_iterable(sorted([item for item in self.cells.items() if item[1]])))
        return self._copy_key

    def copy(self) -> RowResult:
        """This result with a list of problems of its own (the cells and payout are shared)."""
        return RowResult(self.row, self.cells, self.payout, list(self.problems), self.normalised_phone, self._copy_key)


CopyKey = tuple[str, ...]


@dataclass(frozen=True)
class Rules:
    """Operator limits: amounts in major units per currency (``None``: no limit)."""

    max_row_amount: Decimal | None = None
    max_total: Decimal | None = None
    strict: bool = False


@dataclass
class Report:
    rows: list[RowResult]

    @property
    def valid_rows(self) -> list[RowResult]:
        return [r for r in self.rows if r.valid]

    @property
    def problems(self) -> list[Problem]:
        return [p for r in self.rows for p in r.problems]

    def by_severity(self) -> dict[Severity, list[Problem]]:
        """Errors, warnings and holds, each in row order, from one pass over the rows."""
        out: dict[Severity, list[Problem]] = {"error": [], "warning": [], "held": []}
        for r in self.rows:
            for p in r.problems:
                out[p.severity].append(p)
        return out

    def errors(self) -> list[Problem]:
        return self.by_severity()["error"]

    def warnings(self) -> list[Problem]:
        return self.by_severity()["warning"]

    def holds(self) -> list[Problem]:
        """Why valid rows will not be paid until a person accepts them (payroll guardrails)."""
        return self.by_severity()["held"]

    def held_rows(self) -> dict[int, list[Problem]]:
        """Valid rows held by a guardrail, with their reasons, by row number."""
        out: dict[int, list[Problem]] = {}
        for problem in self.holds():
            out.setdefault(problem.row, []).append(problem)
        return out

    def totals(self) -> dict[tuple[str, str], tuple[int, Decimal]]:
        """(currency, method) -> (valid rows, sum of amounts)."""
        out: dict[tuple[str, str], tuple[int, Decimal]] = {}
        for r in self.valid_rows:
            assert r.payout is not None
            key = (r.payout.currency, r.payout.method.value)
            count, total = out.get(key, (0, Decimal(0)))
            out[key] = (count + 1, total + r.payout.amount)
        return out


# -- text cleaning ------------------------------------------------------------------------------

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)
_SPACES = re.compile(r"[\u00a0\u2007\u202f\u2009\u200a\u3000]")


def clean(text: str) -> tuple[str, bool]:
    """Strip, drop zero-width characters, turn odd spaces into plain ones; say if anything changed."""
    if text.isascii():
        stripped = text.strip()
        return stripped, False
    out = _SPACES.sub(" ", text.translate(_ZERO_WIDTH)).strip()
    return out, out != text.strip()


def _non_ascii_digits(text: str) -> bool:
    return not text.isascii() and any(ch.isdigit() and not ("0" <= ch <= "9") for ch in text)


# -- amounts ---------------------------------------------------------------------------------------

_SYMBOLS = ("KSHS", "KSH", "USH", "TSH", "GH₵", "₵", "ZK", "FRW", "FCFA", "CFA", "US$", "$", "R")
_SYMBOL_ALT = "|".join(re.escape(x) for x in sorted({*_SYMBOLS, *CURRENCY_DIGITS}, key=len, reverse=True))
_LEADING_SYMBOL = re.compile(rf"^({_SYMBOL_ALT})")
_TRAILING_SYMBOL = re.compile(rf"({_SYMBOL_ALT})$")
_THOUSANDS_COMMA = re.compile(r"^\d{1,3}(,\d{3})+(\.\d+)?$")
_THOUSANDS_DOT = re.compile(r"^\d{1,3}(\.\d{3}){2,}$")
_CODE = re.compile(r"[A-Z]{3}")
_PLAIN_AMOUNT = re.compile(r"\d+(\.\d+)?")


_SIMPLE_AMOUNT = re.compile(r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
MAX_WHOLE_DIGITS = 15  # an amount has fewer: the totals of a million rows stay exact in Decimal's 28 digits
TOO_LARGE_AMOUNT = Decimal(10) ** MAX_WHOLE_DIGITS  # the smallest amount refused as too large
TOO_LARGE = f"the amount has more than {MAX_WHOLE_DIGITS} digits before the decimal point; no payout is that large"


def _plain_amount(text: str, currency: str) -> Decimal | None:
    """The usual amount cell (``1500``, ``1,500``, ``1500.50``) read without the checks that cannot
    apply to it; None when it is anything else or breaks a rule (the full reading says why)."""
    if not text.isascii():
        return None
    s = text.strip()
    if not _SIMPLE_AMOUNT.fullmatch(s):
        return None
    value = Decimal(s.replace(",", ""))
    digits = minor_digits(currency) if currency else 2
    exponent = value.normalize().as_tuple().exponent
    if value <= 0 or value >= TOO_LARGE_AMOUNT or not isinstance(exponent, int) or -exponent > digits:
        return None
    return value.quantize(Decimal(1).scaleb(-digits)) if digits else value.to_integral_value()


class AmountError(ValueError):
    """An amount that cannot be read safely; the message says why."""


def parse_amount(text: str, currency: str) -> Decimal:
    """Exact decimal major units from text such as ``"1,500.00"`` or ``"KES 1 500"``."""
    plain = _plain_amount(text, currency)
    if plain is not None:
        return plain
    raw, _ = clean(text)
    if not raw:
        raise AmountError("the amount is empty")
    if _non_ascii_digits(raw):
        raise AmountError("the amount contains digits from another script; type it with 0-9")
    s = raw.upper().replace(" ", "")
    for code in _CODE.findall(s):
        if code in CURRENCY_DIGITS and currency and code != currency:
            raise AmountError(f"the amount says {code} but the row's currency is {currency}")
    s = _LEADING_SYMBOL.sub("", s)
    s = _TRAILING_SYMBOL.sub("", s)
    if (s.startswith("(") and s.endswith(")")) or s.startswith("-"):
        raise AmountError("the amount is negative")
    if "E" in s:
        raise AmountError("the amount is in scientific notation; type the full number")
    s = s.replace("'", "").replace("_", "")
    if "," in s and "." in s:
        if not _THOUSANDS_COMMA.match(s):
            raise AmountError("the amount mixes separators in an unusual way; write it like 1500.00")
        s = s.replace(",", "")
    elif "," in s:
        if not _THOUSANDS_COMMA.match(s):
            raise AmountError(
                "a comma here could be a decimal comma or a thousands separator; write the amount like 1500.50"
            )
        s = s.replace(",", "")
    elif _THOUSANDS_DOT.match(s):
        s = s.replace(".", "")
    if not _PLAIN_AMOUNT.fullmatch(s):
        raise AmountError("the amount is not a number")
    try:
        value = Decimal(s)
    except InvalidOperation:
        raise AmountError("the amount is not a number") from None
    if value <= 0:
        raise AmountError("the amount must be more than zero")
    if value >= TOO_LARGE_AMOUNT:
        raise AmountError(TOO_LARGE)
    digits = minor_digits(currency) if currency else 2
    exponent = value.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > digits:
        unit = "whole units" if digits == 0 else f"at most {digits} decimals"
        raise AmountError(f"{currency} amounts take {unit}")
    return value.quantize(Decimal(1).scaleb(-digits)) if digits else value.to_integral_value()


# -- phones ----------------------------------------------------------------------------------------

_NETWORK_WORDS = {
    "SAFARICOM": "MPESA",
    "MPESA": "MPESA",
    "M-PESA": "MPESA",
    "AIRTEL": "AIRTEL",
    "AIRTELMONEY": "AIRTEL",
    "MTN": "MTN",
    "MTNMOMO": "MTN",
    "MOMO": "MTN",
    "VODAFONE": "VODAFONE",
    "VODAFONECASH": "VODAFONE",
    "TELECEL": "VODAFONE",
    "TIGO": "TIGO",
    "AIRTELTIGO": "AIRTEL",
    "VODACOM": "VODACOM",
    "MPESATZ": "VODACOM",
    "HALOTEL": "HALOPESA",
    "HALOPESA": "HALOPESA",
    "YAS": "YAS",
    "ZAMTEL": "ZAMTEL",
    "ORANGE": "ORANGE",
    "ORANGEMONEY": "ORANGE",
    "MOOV": "MOOV",
    "WAVE": "WAVE",
    "FREE": "FREE",
    "EXPRESSO": "EXPRESSO",
    "TMONEY": "TMONEY",
}


def network_word(text: str) -> str:
    return _NETWORK_WORDS.get(re.sub(r"[^A-Z-]", "", text.upper()).replace("-", ""), text.upper().strip())


class Phone(NamedTuple):
    """A usable number: its E.164, the repairs made to reach it, and what a carrier is looked up
    by. A tuple, and its phonenumbers object made only when asked for: 100,000 rows make 100,000."""

    e164: str
    warnings: tuple[str, ...]
    parsed: phonenumbers.PhoneNumber | None = None  # as phonenumbers' parse made it
    calling_code: int = 0  # else, when not 0: the number is +<calling_code><national digits>

    @property
    def number(self) -> phonenumbers.PhoneNumber | None:
        """The number for phonenumbers' look-ups; None for a number not looked up (sandbox)."""
        if self.parsed is not None or not self.calling_code:
            return self.parsed
        national = self.e164[len(str(self.calling_code)) + 1 :]
        return phonenumbers.PhoneNumber(country_code=self.calling_code, national_number=int(national))


class PhoneError(ValueError):
    """A phone number that cannot be used; the message says why."""


def parse_phone(text: str, country: CountryInfo) -> Phone:
    """E.164 for ``country``, with safe repairs reported, or :class:`PhoneError`."""
    raw, odd_spaces = clean(text)
    warnings: list[str] = []
    if odd_spaces:
        warnings.append("removed invisible or non-breaking spaces")
    if not raw:
        raise PhoneError("the phone number is empty")
    if not odd_spaces:
        canonical = _parse_international(raw, country)
        if canonical is not None:
            return canonical
    return _parse_any(raw, country, warnings)


def _parse_any(raw: str, country: CountryInfo, warnings: list[str]) -> Phone:
    """:func:`parse_phone` of a cleaned, non-empty ``raw`` through phonenumbers' parse, repairs
    reported in ``warnings``."""
    # the usual cell is plain digits: none of the repairs can apply to it
    compact = raw if _plain_digits(raw) else _compact_phone(raw, warnings)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    calling = _calling_code(country.code)
    if not compact.startswith("+"):
        if compact.startswith(calling) and len(compact) > len(calling) + 7:
            compact = "+" + compact
            warnings.append("added the + before the country code")
        elif not compact.startswith("0"):
            warnings.append("restored the leading 0 the spreadsheet dropped")
    try:
        number = phonenumbers.parse(compact, country.code)
    except phonenumbers.NumberParseException:
        raise PhoneError("this is not a phone number") from None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    region = phonenumbers.region_code_for_number(number)
    if region and region != country.code:
        raise PhoneError(
            f"this is a number of {region} (+{number.country_code}), but the row's country is {country.code}"
        )
    if str(number.country_code) == calling and str(number.national_number) in SANDBOX_ENDINGS:
        warnings.append(SANDBOX_NUMBER)
        return Phone(e164, tuple(warnings))
    _require_mobile(phonenumbers.number_type(number), country)
    return Phone(e164, tuple(warnings), number)


SANDBOX_NUMBER = "this is a Kotani sandbox test number"


def _require_mobile(kind: int, country: CountryInfo) -> None:
    """PhoneError unless ``kind`` (a ``PhoneNumberType`` value; UNKNOWN for an invalid number) is
    one a mobile money payout can go to."""
    if kind == PhoneNumberType.UNKNOWN:
        raise PhoneError(f"this is not a valid {country.name} phone number")
    if kind not in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE):
        raise PhoneError(f"this is not a {country.name} mobile number")


def _parse_international(raw: str, country: CountryInfo) -> Phone | None:
    """What :func:`parse_phone` says of ``+<calling code><number>`` (digits only, the number not
    starting with 0) when the calling code is the country's own and no other region's, or None
    for any other text. Exact: such a number is one that phonenumbers' parse reads without
    stripping, extracting or repairing anything, so only its type remains to be looked up; the
    costly parse is skipped (``tests/test_validate.py`` checks both agree)."""
    region = _region(country.code)
    if region is None or not raw.startswith(region.plus_code):
        return None
    national = raw[len(region.plus_code) :]
    if not (national.isascii() and national.isdigit() and 2 <= len(national) <= 17) or national[0] == "0":
        return None
    if region.national_prefix is not None and region.national_prefix.match(national):
        return None  # parse might read the start as a national prefix: leave it to parse
    if national in SANDBOX_ENDINGS:
        return Phone(raw, (SANDBOX_NUMBER,))
    _require_mobile(region.kind(national), country)
    return Phone(raw, (), calling_code=region.calling_code)


_SPECIAL_TYPES = (
    ("premium_rate", PhoneNumberType.PREMIUM_RATE),
    ("toll_free", PhoneNumberType.TOLL_FREE),
    ("shared_cost", PhoneNumberType.SHARED_COST),
    ("voip", PhoneNumberType.VOIP),
    ("personal_number", PhoneNumberType.PERSONAL_NUMBER),
    ("pager", PhoneNumberType.PAGER),
    ("uan", PhoneNumberType.UAN),
    ("voicemail", PhoneNumberType.VOICEMAIL),
)


def _pattern_for(desc: phonenumbers.PhoneNumberDesc | None, length: int) -> str | None:
    """The pattern a national number of ``length`` digits must match to be of ``desc``'s type, or
    None when no such number is (phonenumbers' ``_is_number_matching_desc``)."""
    if desc is None or not desc.national_number_pattern:
        return None
    if desc.possible_length and length not in desc.possible_length:
        return None
    return desc.national_number_pattern


def _compiled(pattern: str | None) -> re.Pattern[str] | None:
    return re.compile(pattern) if pattern is not None else None


@dataclass(frozen=True)
class _TypesOfLength:
    """phonenumbers' number descriptions for national numbers of one length, compiled once; the
    special types (premium rate, toll free...) also as one pattern, since most numbers are none."""

    general: re.Pattern[str] | None
    any_special: re.Pattern[str] | None
    special: tuple[tuple[re.Pattern[str], int], ...]
    fixed_line: re.Pattern[str] | None
    mobile: re.Pattern[str] | None

    @classmethod
    def of(cls, metadata: phonenumbers.PhoneMetadata, length: int) -> _TypesOfLength:
        special = [
            (pattern, kind)
            for name, kind in _SPECIAL_TYPES
            if (pattern := _pattern_for(getattr(metadata, name), length)) is not None
        ]
        return cls(
            general=_compiled(_pattern_for(metadata.general_desc, length)),
            any_special=_compiled("|".join(f"(?:{p})" for p, _ in special) if special else None),
            special=tuple((re.compile(p), kind) for p, kind in special),
            fixed_line=_compiled(_pattern_for(metadata.fixed_line, length)),
            mobile=_compiled(_pattern_for(metadata.mobile, length)),
        )


@dataclass
class _Region:
    """What the international lane needs of one region: its calling code, the national prefix
    phonenumbers' parse may strip, and ``number_type`` with the metadata compiled once (the same
    descriptions tried in the same order; phonenumbers looks up each pattern on every call, the
    largest cost of checking 100,000 numbers)."""

    metadata: phonenumbers.PhoneMetadata
    calling_code: int
    plus_code: str
    national_prefix: re.Pattern[str] | None
    by_length: dict[int, _TypesOfLength] = field(default_factory=dict)

    def kind(self, national: str) -> int:
        """phonenumbers' ``number_type`` of a national number (a ``PhoneNumberType`` value)."""
        types = self.by_length.get(len(national))
        if types is None:
            types = self.by_length[len(national)] = _TypesOfLength.of(self.metadata, len(national))
        if types.general is None or not types.general.fullmatch(national):
            return PhoneNumberType.UNKNOWN
        if types.any_special is not None and types.any_special.fullmatch(national):
            return next(kind for pattern, kind in types.special if pattern.fullmatch(national))
        same = bool(self.metadata.same_mobile_and_fixed_line_pattern)
        mobile = types.mobile is not None and types.mobile.fullmatch(national) is not None
        if types.fixed_line is not None and types.fixed_line.fullmatch(national):
            return PhoneNumberType.FIXED_LINE_OR_MOBILE if same or mobile else PhoneNumberType.FIXED_LINE
        return PhoneNumberType.MOBILE if not same and mobile else PhoneNumberType.UNKNOWN


@cache
def _region(code: str) -> _Region | None:
    """The international lane's view of an ISO-2 region, or None when its calling code is shared
    with other regions (+1, +7, +44...) or phonenumbers has no metadata for it."""
    calling = phonenumbers.country_code_for_region(code)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(code)
    if metadata is None or phonenumbers.region_codes_for_country_code(calling) != (code,):
        return None
    prefix = metadata.national_prefix_for_parsing
    return _Region(metadata, calling, f"+{calling}", re.compile(prefix) if prefix else None)


def _plain_digits(text: str) -> bool:
    """ASCII digits, with at most a leading ``+``."""
    digits = text[1:] if text.startswith("+") else text
    return digits.isascii() and digits.isdigit()


def _compact_phone(raw: str, warnings: list[str]) -> str:
    """Undo what spreadsheets do to phone numbers (scientific notation, ``.0``, spaces, dashes,
    brackets), reporting each repair; :class:`PhoneError` when digits are lost or foreign."""
    if _non_ascii_digits(raw):
        raise PhoneError("the phone number contains digits from another script; type it with 0-9")
    sci = re.fullmatch(r"(\d)\.(\d+)[eE]\+?(\d+)", raw)
    if sci:
        mantissa, exponent = sci.group(1) + sci.group(2), int(sci.group(3))
        if exponent != len(mantissa) - 1:
            raise PhoneError(
                "the spreadsheet turned this phone number into a rounded number "
                "(scientific notation); digits are lost, retype it as text"
            )
        raw = mantissa
        warnings.append("rebuilt from scientific notation (the cell was a number)")
    if re.fullmatch(r"\d+\.0+", raw):
        raw = raw.split(".")[0]
    compact = re.sub(r"[\s\-().]", "", raw)
    if compact != raw:
        warnings.append("removed spaces, dashes or brackets")
    if not re.fullmatch(r"\+?\d+", compact):
        raise PhoneError("the phone number has characters other than digits")
    return compact


@cache
def _calling_code(region: str) -> str:
    """The international calling code of an ISO-2 region, as text (``"254"`` for KE)."""
    return str(phonenumbers.country_code_for_region(region))


def carrier_network(phone: Phone) -> str | None:
    """The network the number's prefix belongs to, when the prefix tells."""
    if phone.number is None:
        return None
    from phonenumbers import carrier  # its prefix tables load only when a row names a network

    name = carrier.name_for_number(phone.number, "en")
    return _NETWORK_WORDS.get(name.upper().replace(" ", "")) if name else None


# -- rows ------------------------------------------------------------------------------------------

_METHODS = {
    "": Method.MOBILE_MONEY,
    "mobilemoney": Method.MOBILE_MONEY,
    "mobile": Method.MOBILE_MONEY,
    "momo": Method.MOBILE_MONEY,
    "mpesa": Method.MOBILE_MONEY,
    "wallet": Method.MOBILE_MONEY,
    "till": Method.TILL,
    "buygoods": Method.TILL,
    "lipanampesa": Method.TILL,
    "tillnumber": Method.TILL,
    "paybill": Method.PAYBILL,
    "bank": Method.BANK,
    "banktransfer": Method.BANK,
    "eft": Method.BANK,
}


class _Memo:
    """Each pure look-up done once per distinct input during one validation: a 100,000-row file
    repeats its methods, countries and currencies on every row, often its amounts, sometimes its
    phone numbers. Failures are kept as their message."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._methods: dict[str, Method | None] = {}
        self._countries: dict[str, CountryInfo | None] = {}
        self._amounts: dict[tuple[str, str], Decimal | str] = {}
        self._phones: dict[tuple[str, str], Phone | str] = {}
        self._currencies: dict[str, set[str]] = {}
        self._network_words: dict[str, str] = {}
        self._carriers: dict[str, str | None] = {}
        self._plain_countries: dict[tuple[str, str, str], CountryInfo | None] = {}

    def method(self, raw: str) -> Method | None:
        try:
            return self._methods[raw]
        except KeyError:
            found = self._methods[raw] = _METHODS.get(re.sub(r"[^a-z]", "", raw.lower()))
            return found

    def country(self, raw: str) -> CountryInfo | None:
        try:
            return self._countries[raw]
        except KeyError:
            found = self._countries[raw] = self.catalog.country(raw)
            return found

    def amount(self, raw: str, currency: str) -> Decimal | str:
        key = (raw, currency)
        found = self._amounts.get(key)
        if found is None:
            try:
                found = parse_amount(raw, currency)
            except AmountError as exc:
                found = str(exc)
            self._amounts[key] = found
        return found

    def currencies(self, country: CountryInfo) -> set[str]:
        try:
            return self._currencies[country.code]
        except KeyError:
            found = self._currencies[country.code] = self.catalog.currencies_for(country)
            return found

    def network_word(self, raw: str) -> str:
        try:
            return self._network_words[raw]
        except KeyError:
            found = self._network_words[raw] = network_word(raw)
            return found

    def carrier(self, phone: Phone) -> str | None:
        try:
            return self._carriers[phone.e164]
        except KeyError:
            found = self._carriers[phone.e164] = carrier_network(phone)
            return found

    def plain_country(self, method: str, country: str, currency: str) -> CountryInfo | None:
        """The country of a row the quick lane may take: mobile money, its country written as its
        code, a currency it is paid in; None for any other row."""
        key = (method, country, currency)
        try:
            return self._plain_countries[key]
        except KeyError:
            found = self.country(country) if country else None
            plain = (
                self.method(method) is Method.MOBILE_MONEY
                and found is not None
                and country == found.code
                and currency in self.currencies(found)
            )
            self._plain_countries[key] = found if plain else None
            return self._plain_countries[key]

    def plain_network(self, raw: str, country: CountryInfo, phone: Phone) -> str | Literal[False] | None:
        """The network of a quick-lane row (None when not given and not needed), or False when the
        row needs the full checks: a network Kotani does not pay there, one the number's prefix
        contradicts, or none where one is needed."""
        if not raw:
            return False if country.network_required else None
        network = self.network_word(raw)
        prefix = self.carrier(phone)
        if (country.networks and network not in country.networks) or (
            prefix and prefix != network and prefix in country.networks
        ):
            return False
        return network

    def phone(self, raw: str, country: CountryInfo) -> Phone | str:
        key = (raw, country.code)
        found = self._phones.get(key)
        if found is None:
            try:
                found = parse_phone(raw, country)
            except PhoneError as exc:
                found = str(exc)
            self._phones[key] = found
        return found


class _Row:
    """Validation of one row; collects problems instead of stopping at the first."""

    def __init__(self, number: int, cells: Mapping[str, str], memo: _Memo, rules: Rules) -> None:
        self.result = RowResult(number, {})
        self.memo = memo
        self.catalog = memo.catalog
        self.rules = rules
        for key, value in cells.items():
            text, changed = clean(value)
            if key == "phone":  # phone repairs are reported by parse_phone itself
                self.result.cells[key] = value.strip()
                continue
            self.result.cells[key] = text
            if changed:
                self.warn(key, value, "removed invisible or non-breaking spaces")

    def error(self, column: str, value: str, message: str) -> None:
        self.result.problems.append(Problem(self.result.row, column, value, message, "error"))

    def warn(self, column: str, value: str, message: str) -> None:
        self.result.problems.append(Problem(self.result.row, column, value, message, "warning"))

    def get(self, column: str) -> str:
        return self.result.cells.get(column, "")

    def run(self) -> RowResult:
        method = self._method()
        country, currency = self._country_and_currency()
        amount = self._amount(currency)
        name = self.get("name")
        if not name:
            self.error("name", "", "the recipient's name is empty")
        fields: dict[str, object] = {
            "row": self.result.row,
            "name": name,
            "amount": amount,
            "currency": currency,
            "country": country.code if country else "",
            "reference": self.get("reference") or None,
            "narration": self.get("narration") or None,
        }
        if method is not None and country is not None:
            fields.update(self._method_fields(method, country))
        if any(p.severity == "error" for p in self.result.problems):
            return self.result
        try:
            self.result.payout = _PAYOUT.validate_python({**fields, "method": method})
        except ValidationError as exc:  # a guard: the checks above should catch everything
            self.error("", "", f"cannot be paid: {exc.errors()[0]['msg']}")
        return self.result

    def _method(self) -> Method | None:
        raw = self.get("method")
        found = self.memo.method(raw)
        if found is None:
            self.error("method", raw, "unknown payment method; use mobile_money, till, paybill or bank")
        return found

    def _country_and_currency(self) -> tuple[CountryInfo | None, str]:
        raw_country, currency = self.get("country"), self.get("currency").upper()
        country = self.memo.country(raw_country) if raw_country else None
        if raw_country and country is None:
            self.error("country", raw_country, "this country is not supported for payouts")
            return None, currency
        if country is not None and raw_country.upper() != country.code:
            self.warn("country", "", f"country {raw_country!r} read as {country.code}")
        if country is None:
            options = self.catalog.countries_for_currency(currency) if currency else []
            if len(options) == 1:
                country = options[0]
                self.warn("country", "", f"no country given; used {country.code} from the currency {currency}")
            else:
                self.error("country", "", "the country is missing")
                return None, currency
        if not currency:
            currency = country.currency
            self.warn("currency", "", f"no currency given; used {currency}, the currency of {country.code}")
        elif currency not in self.memo.currencies(country):
            self.error("currency", currency, f"{country.name} is paid in {country.currency}, not {currency}")
        return country, currency

    def _amount(self, currency: str) -> Decimal:
        raw = self.get("amount")
        amount = self.memo.amount(raw, currency)
        if isinstance(amount, str):
            self.error("amount", raw, amount)
            return Decimal(0)
        if self.rules.max_row_amount is not None and amount > self.rules.max_row_amount:
            self.error("amount", raw, f"more than the {self.rules.max_row_amount} per-row limit (--max-row-amount)")
        return amount

    def _method_fields(self, method: Method, country: CountryInfo) -> dict[str, object]:
        phone = self._phone(country, required=method == Method.MOBILE_MONEY)
        out: dict[str, object] = {"phone": phone}
        if method == Method.MOBILE_MONEY:
            out["network"] = self._network(country)
        elif method in (Method.TILL, Method.PAYBILL):
            if country.code != "KE" or (self.get("currency") or "KES").upper() != "KES":
                self.error("method", method.value, "till and paybill payments exist only in Kenya, in KES")
            if method == Method.TILL:
                out["till_number"] = self._digits("till_number", 5, 8, "till number")
                out["account_reference"] = self.get("account_reference") or None
            else:
                out["paybill_number"] = self._digits("paybill_number", 5, 8, "paybill number")
                ref = self.get("account_reference")
                if not ref:
                    self.error("account_reference", "", "a paybill payment needs the account reference")
                elif len(ref) > 20:
                    self.error("account_reference", ref, "the account reference is longer than 20 characters")
                out["account_reference"] = ref
        else:
            out.update(self._bank(country))
        return out

    def _phone(self, country: CountryInfo, required: bool) -> str | None:
        raw = self.get("phone")
        if not raw:
            if required:
                self.error("phone", "", "a mobile money payment needs a phone number")
            return None
        phone = self.memo.phone(raw, country)
        if isinstance(phone, str):
            if required:
                self.error("phone", raw, phone)
            else:
                self.warn("phone", raw, f"ignored: {phone}")
            return None
        for warning in phone.warnings:
            self.warn("phone", raw, warning)
        self.result.normalised_phone = phone.e164
        self._phone_parsed = phone
        return phone.e164

    _phone_parsed: Phone | None = None

    def _network(self, country: CountryInfo) -> str | None:
        raw = self.get("network")
        if not raw:
            if country.network_required:
                self.error("network", "", f"{country.name} payments need the network ({', '.join(country.networks)})")
            return None
        network = self.memo.network_word(raw)
        if country.networks and network not in country.networks:
            self.error(
                "network", raw, f"not a network Kotani pays in {country.name}; use one of {', '.join(country.networks)}"
            )
            return None
        prefix = self.memo.carrier(self._phone_parsed) if self._phone_parsed else None
        if prefix and prefix != network and prefix in country.networks:
            self.warn("network", raw, f"the number looks like a {prefix} number")
        return network

    def _digits(self, column: str, low: int, high: int, what: str) -> str:
        raw = self.get(column)
        digits = re.sub(r"[\s-]", "", raw)
        if digits.endswith(".0"):
            digits = digits[:-2]
        if not digits:
            self.error(column, "", f"the {what} is missing")
        elif _non_ascii_digits(digits) or not digits.isdigit() or not low <= len(digits) <= high:
            self.error(column, raw, f"a {what} has {low} to {high} digits")
        return digits

    def _bank(self, country: CountryInfo) -> dict[str, object]:
        if country.code not in BANK_COUNTRIES:
            self.error("method", "bank", "bank payouts are available only in Kenya and South Africa")
            return {}
        currency = BANK_COUNTRIES[country.code]
        banks = self.catalog.banks.get(currency, {})
        raw_code = self.get("bank_code")
        code = raw_code.removesuffix(".0")
        if not code:
            self.error("bank_code", "", "a bank payment needs the bank code")
        elif code not in banks:
            padded = [c for c in banks if c.lstrip("0") == code.lstrip("0")]
            if len(padded) == 1:
                self.warn("bank_code", raw_code, f"read as {padded[0]} (leading zeros restored)")
                code = padded[0]
            else:
                self.error("bank_code", raw_code, f"not a bank code Kotani supports for {currency}")
        name = self.get("bank_name")
        if country.code == "ZA" and not name:
            hint = f" (code {code} is {banks[code]})" if code in banks else ""
            self.error("bank_name", "", f"South African bank payments need the bank name{hint}")
        account = re.sub(r"[\s-]", "", self.get("account_number")).removesuffix(".0")
        low, high = (6, 16) if country.code == "KE" else (6, 13)
        if not account:
            self.error("account_number", "", "a bank payment needs the account number")
        elif _non_ascii_digits(account) or not account.isdigit() or not low <= len(account) <= high:
            self.error(
                "account_number",
                self.get("account_number"),
                f"a {country.name} account number has {low} to {high} digits",
            )
        return {"bank_code": code, "bank_name": name or None, "account_number": account}


def validate_rows(rows: list[tuple[int, dict[str, str]]], catalog: Catalog, rules: Rules | None = None) -> Report:
    """Validate every row, then the batch as a whole."""
    rls = rules or Rules()
    results = validate_each(rows, catalog, rls)
    batch_checks(results, rls)
    return Report(results)


def validate_each(rows: list[tuple[int, dict[str, str]]], catalog: Catalog, rules: Rules) -> list[RowResult]:
    """Row-by-row checks only (no batch checks): safe to run on chunks in parallel. The quick
    lane's payouts are built by pydantic in one call per :data:`CHUNK` rows."""
    memo = _Memo(catalog)
    out: list[RowResult] = []
    for start in range(0, len(rows), CHUNK):
        out += _validate_chunk(rows[start : start + CHUNK], memo, rules)
    return out


CHUNK = 2000  # rows whose payouts pydantic builds in one call: fewer calls, little memory held at once


def _validate_chunk(rows: list[tuple[int, dict[str, str]]], memo: _Memo, rules: Rules) -> list[RowResult]:
    results: list[RowResult | None] = []
    quick: list[tuple[int, int, dict[str, str], dict[str, object]]] = []  # (index, row, cells, payout fields)
    for number, cells in rows:
        fields = _plain_fields(number, cells, memo, rules)
        if fields is None:
            results.append(_Row(number, cells, memo, rules).run())
        else:
            quick.append((len(results), number, cells, fields))
            results.append(None)
    payouts = _payouts([fields for *_, fields in quick])
    for (index, number, cells, _), payout in zip(quick, payouts, strict=True):
        results[index] = (
            RowResult(number, cells, payout, [], payout.phone or "")
            if payout is not None
            else _Row(number, cells, memo, rules).run()
        )
    return [r for r in results if r is not None]


# the quick lane takes mobile money rows only: the model the Payout union would pick for them
_MOBILE_PAYOUTS: TypeAdapter[list[MobileMoneyPayout]] = TypeAdapter(list[MobileMoneyPayout])


def _payouts(fields: list[dict[str, object]]) -> list[Payout | None]:
    """Each quick-lane row's payout, or None for a row pydantic refuses (the full checks then say why)."""
    try:
        return list(_MOBILE_PAYOUTS.validate_python(fields))
    except ValidationError:
        return [_payout(one) for one in fields]


def _payout(fields: dict[str, object]) -> Payout | None:
    try:
        return _PAYOUT.validate_python(fields)
    except ValidationError:
        return None


def _plain_row(number: int, cells: dict[str, str], memo: _Memo, rules: Rules) -> RowResult | None:
    """The result of a mobile money row that needs no repair and has no problem, or None when the
    row needs the full checks of :class:`_Row` (which then give every message). Most rows of a
    large file are like this; the answer is the one :class:`_Row` would give, only sooner
    (``tests/test_validate.py`` checks that both agree)."""
    fields = _plain_fields(number, cells, memo, rules)
    payout = _payout(fields) if fields is not None else None
    return RowResult(number, cells, payout, [], payout.phone or "") if payout is not None else None


def _plain_fields(number: int, cells: dict[str, str], memo: _Memo, rules: Rules) -> dict[str, object] | None:
    """The payout fields of a row the quick lane takes (see :func:`_plain_row`), or None."""
    for value in cells.values():
        if not value.isascii() or value != value.strip():
            return None
    get = cells.get
    currency = get("currency", "")
    country = memo.plain_country(get("method", ""), get("country", ""), currency)
    name, raw_phone = get("name", ""), get("phone", "")
    if country is None or not name or not raw_phone:
        return None
    amount = memo.amount(get("amount", ""), currency)
    if isinstance(amount, str) or (rules.max_row_amount is not None and amount > rules.max_row_amount):
        return None
    phone = memo.phone(raw_phone, country)
    if isinstance(phone, str) or phone.warnings:
        return None
    network = memo.plain_network(get("network", ""), country, phone)
    if network is False:
        return None
    return {
        "row": number,
        "name": name,
        "amount": amount,
        "currency": currency,
        "country": country.code,
        "reference": get("reference") or None,
        "narration": get("narration") or None,
        "phone": phone.e164,
        "network": network,
        "method": Method.MOBILE_MONEY,
    }


def batch_checks(results: list[RowResult], rules: Rules) -> None:
    first_seen: dict[CopyKey, int] = {}
    payees: dict[tuple[str, str], int] = {}
    references: dict[str, int] = {}
    for r in results:
        key = r.copy_key
        if key in first_seen:
            r.problems.append(Problem(r.row, "", "", f"exact duplicate of row {first_seen[key]}"))
            continue
        first_seen[key] = r.row
        ref = r.cells.get("reference", "")
        if ref:
            if ref in references:
                message = f"this reference is already used in row {references[ref]}"
                r.problems.append(Problem(r.row, "reference", ref, message))
            else:
                references[ref] = r.row
        if r.payout is not None:
            payee = (r.payout.payee(), r.payout.currency)
            if payee in payees:
                severity: Severity = "error" if rules.strict else "warning"
                message = f"the same payee is also paid in row {payees[payee]}"
                r.problems.append(Problem(r.row, "", "", message, severity))
            else:
                payees[payee] = r.row
    if rules.max_total is not None:
        totals: dict[str, Decimal] = defaultdict(Decimal)
        for r in results:
            if r.valid and r.payout is not None:
                totals[r.payout.currency] += r.payout.amount
        for r in results:
            if r.valid and r.payout is not None and totals[r.payout.currency] > rules.max_total:
                r.problems.append(
                    Problem(
                        r.row,
                        "amount",
                        "",
                        f"the {r.payout.currency} total "
                        f"{totals[r.payout.currency]} is more than --max-total {rules.max_total}",
                    )
                )
