"""The blank payout file: every column, one example row per method, instructions."""

from __future__ import annotations

from pathlib import Path

from batch_payouts.sheets.columns import CANONICAL
from batch_payouts.sheets.write import write_table
from batch_payouts.sheets.xlsx import SheetSpec

EXAMPLES: list[dict[str, str]] = [
    {"name": "Wanjiru Kamau", "phone": "+254712345678", "country": "KE", "network": "MPESA",
     "amount": "1500", "currency": "KES", "method": "mobile_money", "reference": "NOV-001",
     "narration": "November stipend"},
    {"name": "Corner Shop Ltd", "country": "KE", "amount": "2500", "currency": "KES", "method": "till",
     "till_number": "174379", "reference": "NOV-002", "narration": "Supplies"},
    {"name": "Nairobi Water", "country": "KE", "amount": "3200", "currency": "KES", "method": "paybill",
     "paybill_number": "888880", "account_reference": "ACC-10023", "reference": "NOV-003"},
    {"name": "Thandiwe Nkosi", "country": "ZA", "amount": "1250.50", "currency": "ZAR", "method": "bank",
     "bank_code": "250655", "bank_name": "FNB", "account_number": "62000000001", "reference": "NOV-004"},
]
INSTRUCTIONS = [
    ["name", "The recipient's full name (required)."],
    ["phone", "International format, e.g. +254712345678. Needed for mobile money."],
    ["country", "Two-letter code: KE, UG, TZ, GH, ZA ... (or the country's name)."],
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
    ["", "Keep the phone and number columns formatted as text so that leading zeros survive."],
]
TEXT_COLUMNS = {"phone", "bank_code", "account_number", "till_number", "paybill_number", "account_reference"}


def write_template(path: Path) -> None:
    rows = [[example.get(c, "") for c in CANONICAL] for example in EXAMPLES]
    extra = [SheetSpec("Instructions", ["column", "what to put in it"], INSTRUCTIONS)]
    write_table(path, list(CANONICAL), rows, text_columns=TEXT_COLUMNS, extra=extra, title="Payouts",
                blank_text_rows=500)
