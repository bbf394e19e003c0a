"""Canonical column names and the header aliases finance teams actually use."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

CANONICAL: tuple[str, ...] = (
    "name",
    "phone",
    "country",
    "network",
    "amount",
    "currency",
    "method",
    "bank_code",
    "bank_name",
    "account_number",
    "till_number",
    "paybill_number",
    "account_reference",
    "reference",
    "narration",
)
REQUIRED: tuple[str, ...] = ("name", "amount")

_ALIASES: dict[str, tuple[str, ...]] = {
    "name": (
        "name",
        "fullname",
        "recipient",
        "recipientname",
        "payee",
        "payeename",
        "beneficiary",
        "beneficiaryname",
        "accountname",
        "accountholder",
        "employee",
        "employeename",
        "staffname",
    ),
    "phone": (
        "phone",
        "msisdn",
        "mobile",
        "phonenumber",
        "mobilenumber",
        "mobileno",
        "phoneno",
        "telephone",
        "tel",
        "cell",
        "cellphone",
        "mpesanumber",
        "momonumber",
        "walletnumber",
    ),
    "country": ("country", "countrycode", "countryiso", "iso"),
    "network": ("network", "mno", "operator", "telco", "provider", "mobilenetwork"),
    "amount": ("amount", "value", "amt", "payamount", "netpay", "amountdue", "payout"),
    "currency": ("currency", "ccy", "currencycode", "cur"),
    "method": ("method", "paymentmethod", "channel", "paymenttype", "payoutmethod", "type"),
    "bank_code": ("bankcode", "bankid", "branchcode", "universalbranchcode", "swiftcode", "sortcode"),
    "bank_name": ("bankname", "bank"),
    "account_number": ("accountnumber", "accountno", "acctno", "accno", "bankaccount", "bankaccountnumber", "account"),
    "till_number": ("tillnumber", "till", "tillno", "buygoods", "buygoodsnumber", "buygoodstill"),
    "paybill_number": ("paybillnumber", "paybill", "paybillno", "businessnumber", "businessno"),
    "account_reference": (
        "accountreference",
        "accref",
        "paybillaccount",
        "billreference",
        "billref",
        "paybillaccountnumber",
    ),
    "reference": ("reference", "ref", "rowid", "payoutid", "externalid", "yourreference", "id"),
    "narration": ("narration", "description", "memo", "remarks", "note", "notes", "purpose"),
}
_LOOKUP: dict[str, str] = {alias: canon for canon, aliases in _ALIASES.items() for alias in aliases}


def squash(header: str) -> str:
    """Lower-case letters and digits only: ``"Phone No."`` becomes ``"phoneno"``."""
    text = unicodedata.normalize("NFKC", header).lower()
    return re.sub(r"[^a-z0-9]", "", text)


def canonical_for(header: str) -> str | None:
    """The canonical column a header names, if any."""
    return _LOOKUP.get(squash(header))


def map_headers(headers: list[str], explicit: dict[str, str]) -> dict[str, str]:
    """Canonical name -> original header; ``explicit`` (canonical -> header) wins."""
    mapping: dict[str, str] = {}
    by_squash = {squash(h): h for h in headers if h}
    for canon, header in explicit.items():
        match = by_squash.get(squash(header))
        if match is not None:
            mapping[canon] = match
    taken = set(mapping.values())
    for header in headers:
        found = canonical_for(header)
        if found and found not in mapping and header not in taken:
            mapping[found] = header
            taken.add(header)
    return mapping


def header_score(cells: Sequence[str]) -> int:
    """How many distinct canonical columns a candidate header row names."""
    return len({c for c in (canonical_for(x) for x in cells if x) if c})
