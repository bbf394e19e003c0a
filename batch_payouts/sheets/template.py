"""The blank payout file: a bold frozen header with drop-downs, examples and instructions apart.

The XLSX template has three sheets: ``Payouts`` (the header alone, drop-downs for country,
currency, method and network, number columns kept as text), ``Examples`` (one row per method)
and ``Instructions``. The CSV template is the header row alone. Example rows pasted into a payout
file are recognised by :func:`is_example_row`, so they are never paid by mistake.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path

from batch_payouts.errors import OutputExists
from batch_payouts.model import CURRENCY_DIGITS, Method
from batch_payouts.sheets.columns import CANONICAL, squash
from batch_payouts.sheets.spec import ListCheck, SheetSpec
from batch_payouts.sheets.write import write_csv, write_xlsx

EXAMPLES: list[dict[str, str]] = [
    {
        "name": "Akinyi Odera",
        "phone": "+254711000101",
        "country": "KE",
        "network": "MPESA",
        "amount": "1500",
        "currency": "KES",
        "method": "mobile_money",
        "reference": "EXAMPLE-1",
        "narration": "November stipend",
    },
    {
        "name": "Kofi Mensah",
        "phone": "+233241000101",
        "country": "GH",
        "network": "MTN",
        "amount": "350.50",
        "currency": "GHS",
        "method": "mobile_money",
        "reference": "EXAMPLE-2",
        "narration": "Ghana needs the network",
    },
    {
        "name": "Mama Mboga Stores",
        "country": "KE",
        "amount": "2500",
        "currency": "KES",
        "method": "till",
        "till_number": "5123456",
        "reference": "EXAMPLE-3",
        "narration": "Supplies",
    },
    {
        "name": "Kisumu Water",
        "country": "KE",
        "amount": "3200",
        "currency": "KES",
        "method": "paybill",
        "paybill_number": "400222",
        "account_reference": "ACC-0042",
        "reference": "EXAMPLE-4",
    },
    {
        "name": "Lindiwe Dube",
        "country": "ZA",
        "amount": "1250.50",
        "currency": "ZAR",
        "method": "bank",
        "bank_code": "250655",
        "bank_name": "FNB",
        "account_number": "62000000099",
        "reference": "EXAMPLE-5",
    },
]
INSTRUCTIONS = [
    ["name", "The recipient's full name (required)."],
    ["phone", "International format, e.g. +254712345678. Needed for mobile money."],
    ["country", "Two-letter code from the drop-down: KE, UG, TZ, GH, ZA ... (the country's name works too)."],
    ["network", "MPESA, AIRTEL, MTN, VODAFONE ... Required where the country needs it (e.g. Ghana)."],
    ["amount", "In major units: 1500 shillings, 1250.50 rand. Whole units for KES, UGX, TZS, RWF."],
    ["currency", "The country's currency code, e.g. KES."],
    ["method", "mobile_money (default), till, paybill or bank. Till and paybill: Kenya only."],
    ["bank_code", "From `batch-payouts banks --currency KES`. Bank payouts: Kenya and South Africa."],
    ["bank_name", "Required for South African banks, e.g. FNB."],
    ["account_number", "The bank account number (digits)."],
    ["till_number", "M-Pesa till (Buy Goods) number."],
    ["paybill_number", "M-Pesa paybill business number."],
    ["account_reference", "The account number at the paybill."],
    ["reference", "Your own id for the row (optional, must be unique)."],
    ["narration", "A note carried to the results (optional)."],
    [
        "",
        "Fill the Payouts sheet. The Examples sheet shows one row per method; example rows pasted into "
        "the Payouts sheet are refused, never paid.",
    ],
    ["", "Keep the phone and number columns formatted as text so that leading zeros survive."],
]
TEXT_COLUMNS = {"phone", "bank_code", "account_number", "till_number", "paybill_number", "account_reference"}
COUNTRIES = ("KE", "UG", "TZ", "GH", "ZM", "RW", "MW", "CM", "CI", "SN", "CD", "ZA")
NETWORKS = (
    "MPESA",
    "AIRTEL",
    "MTN",
    "VODAFONE",
    "TIGO",
    "VODACOM",
    "YAS",
    "HALOPESA",
    "ZAMTEL",
    "ORANGE",
    "MOOV",
    "WAVE",
    "FREE",
    "EXPRESSO",
    "TMONEY",
)
TEMPLATE_ROWS = 1000  # rows of the Payouts sheet that carry the drop-downs and text formats


def _checks() -> list[ListCheck]:
    at = {name: CANONICAL.index(name) + 1 for name in ("country", "currency", "method", "network")}
    last = TEMPLATE_ROWS + 1
    return [
        # country names are accepted too, so other values only warn
        ListCheck(at["country"], COUNTRIES, last, strict=False, prompt="Two-letter country code"),
        ListCheck(at["currency"], tuple(sorted(CURRENCY_DIGITS)), last, strict=True, prompt="Currency code"),
        ListCheck(at["method"], tuple(m.value for m in Method), last, strict=True, prompt="How to pay"),
        ListCheck(at["network"], NETWORKS, last, strict=False, prompt="Mobile network (mobile money)"),
    ]


def template_sheets() -> list[SheetSpec]:
    examples = [[example.get(c, "") for c in CANONICAL] for example in EXAMPLES]
    return [
        SheetSpec(
            "Payouts",
            list(CANONICAL),
            [],
            TEXT_COLUMNS,
            blank_text_rows=TEMPLATE_ROWS,
            table_header=True,
            checks=_checks(),
            printable=True,
        ),
        SheetSpec("Examples", list(CANONICAL), examples, TEXT_COLUMNS, table_header=True, printable=True),
        SheetSpec(
            "Instructions", ["column", "what to put in it"], INSTRUCTIONS, table_header=True, widths={1: 20.0, 2: 100.0}
        ),
    ]


def write_template(path: Path, *, force: bool = False) -> None:
    """Write the template (XLSX or CSV by suffix); an existing file is replaced only with ``force``."""
    if path.exists() and not force:
        raise OutputExists(str(path))
    if path.suffix.lower() == ".xlsx":
        write_xlsx(path, template_sheets())
    else:
        write_csv(path, list(CANONICAL), [])


# -- recognising example rows -------------------------------------------------------------------------


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _amount_key(text: str) -> str:
    try:
        return str(Decimal(text.replace(",", "").strip()).normalize())
    except InvalidOperation:
        return squash(text)


def example_fingerprint(cells: Mapping[str, str]) -> tuple[str, str, str]:
    """(name, payee, amount) of a row keyed by canonical column names, normalised so that what a
    spreadsheet does to a pasted row (case, spaces, a lost "+", "1,500.00") does not matter."""
    phone = _digits(cells.get("phone", ""))[-9:]
    payee = phone or next(
        (
            _digits(cells.get(c, ""))
            for c in ("till_number", "paybill_number", "account_number")
            if _digits(cells.get(c, ""))
        ),
        "",
    )
    return squash(cells.get("name", "")), payee, _amount_key(cells.get("amount", ""))


EXAMPLE_FINGERPRINTS: frozenset[tuple[str, str, str]] = frozenset(example_fingerprint(e) for e in EXAMPLES)


def is_example_row(cells: Mapping[str, str]) -> bool:
    """True when a row (keyed by canonical column names, as ``engine.plan.check_sheet`` builds
    them) is one of the template's example rows."""
    return example_fingerprint(cells) in EXAMPLE_FINGERPRINTS
