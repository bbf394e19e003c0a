"""Seed data of the sandbox: countries, networks, banks (docs/provider.md; our own tables)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CountrySeed:
    code: str
    iso3: str
    name: str
    currency: str
    networks: tuple[str, ...]
    network_required: bool = False


COUNTRIES: tuple[CountrySeed, ...] = (
    CountrySeed("KE", "KEN", "Kenya", "KES", ("MPESA", "AIRTEL")),
    CountrySeed("UG", "UGA", "Uganda", "UGX", ("MTN", "AIRTEL")),
    CountrySeed("TZ", "TZA", "Tanzania", "TZS", ("VODACOM", "AIRTEL", "TIGO", "YAS", "HALOPESA")),
    CountrySeed("GH", "GHA", "Ghana", "GHS", ("MTN", "VODAFONE", "AIRTEL", "TIGO"), True),
    CountrySeed("ZM", "ZMB", "Zambia", "ZMW", ("MTN", "AIRTEL", "ZAMTEL")),
    CountrySeed("RW", "RWA", "Rwanda", "RWF", ("MTN", "AIRTEL")),
    CountrySeed("MW", "MWI", "Malawi", "MWK", ("AIRTEL",)),
    CountrySeed("CM", "CMR", "Cameroon", "XAF", ("MTN", "ORANGE")),
    CountrySeed("CI", "CIV", "Côte d'Ivoire", "XOF", ("MTN", "ORANGE", "MOOV", "WAVE")),
    CountrySeed("SN", "SEN", "Senegal", "XOF", ("ORANGE", "FREE", "EXPRESSO", "WAVE")),
    CountrySeed("CD", "COD", "DR Congo", "CDF", ("VODACOM", "AIRTEL", "ORANGE")),
    CountrySeed("ZA", "ZAF", "South Africa", "ZAR", ()),
)

WALLET_CURRENCIES: tuple[str, ...] = (
    "KES",
    "UGX",
    "GHS",
    "TZS",
    "RWF",
    "ZMW",
    "XOF",
    "XAF",
    "ZAR",
    "USD",
    "MWK",
    "CDF",
)

# (code, name) per currency. Kenyan codes are the CBK bank codes; South African codes are
# universal branch codes. The provider's own list is runtime data.
BANKS: dict[str, tuple[tuple[str, str], ...]] = {
    "KES": (
        ("01", "KCB"),
        ("68", "Equity Bank"),
        ("11", "Co-operative Bank"),
        ("03", "ABSA Kenya"),
        ("07", "NCBA Bank"),
        ("31", "Stanbic Bank Kenya"),
        ("02", "Standard Chartered Kenya"),
        ("63", "Diamond Trust Bank"),
        ("70", "Family Bank"),
        ("66", "Sidian Bank"),
        ("10", "Prime Bank"),
        ("72", "Gulf African Bank"),
        ("43", "Ecobank Kenya"),
        ("57", "I&M Bank"),
        ("19", "Bank of Africa Kenya"),
        ("23", "Consolidated Bank"),
        ("54", "Victoria Commercial Bank"),
        ("55", "Guardian Bank"),
        ("76", "UBA Kenya"),
        ("51", "Kingdom Bank"),
        ("16", "Citibank Kenya"),
    ),
    "ZAR": (
        ("632005", "ABSA"),
        ("250655", "FNB"),
        ("470010", "Capitec"),
        ("198765", "Nedbank"),
        ("051001", "Standard"),
        ("580105", "Investec"),
        ("430000", "AfricanBank"),
        ("462005", "Bidvest"),
        ("679000", "DiscoveryBank"),
        ("678910", "Tyme"),
    ),
}

NETWORK_ENUM: frozenset[str] = frozenset(
    {
        "MTN",
        "AIRTEL",
        "VODAFONE",
        "TIGO",
        "YAS",
        "ORANGE",
        "NOT_SUPPORTED",
        "ZAMTEL",
        "MPESA",
        "CHECKOUT",
        "BKTRX",
        "CRDTRX",
        "MOOV",
        "TMONEY",
        "FREE",
        "EXPRESSO",
        "HALOPESA",
        "VODACOM",
        "WAVE",
    }
)


def country(code: str) -> CountrySeed | None:
    """The seed for an ISO-2 or ISO-3 code."""
    upper = code.strip().upper()
    return next((c for c in COUNTRIES if upper in (c.code, c.iso3)), None)


# -- name lookups (confirmation of payee) ----------------------------------------------------------
# The provider's documented sandbox accounts (endings 001-007 for phones, bank accounts 1000000001-7,
# shortcodes 100001-3) plus our own for outcomes it documents no number for. Listed for users in
# docs/sandbox-numbers.md; keep the two in step.


@dataclass(frozen=True)
class LookupSeed:
    """How the sandbox answers a name lookup of one test account."""

    status: str  # nameLookupStatus
    name: str | None = None  # the registered name; None: the name the request expected
    account_status: str = "ACTIVE"
    masked: bool = False  # the provider hides most letters of the name
    scored: bool = True  # False: the name comes back without a nameMatch (the corridor scores nothing)
    reason: str | None = None
    timeouts_first: int = 0  # answer TIMEOUT this many times before the answer above


_NOT_FOUND = "No account is registered to this number."
_UNSUPPORTED = "Name lookup is not available for this payout corridor."
_TIMEOUT = "The network did not answer the name lookup in time."
_ERROR = "The network returned an error during the name lookup."
_UNAVAILABLE = "The account exists but cannot receive money at the moment."

PHONE_LOOKUPS: dict[str, LookupSeed] = {  # by the last nine digits of the phone number
    "700000001": LookupSeed("MATCHED", "JANE MARY DOE"),
    "700000002": LookupSeed("MATCHED", "ROBERT JAMES SMITH"),
    "700000003": LookupSeed("NOT_FOUND", reason=_NOT_FOUND),
    "700000004": LookupSeed("UNSUPPORTED", reason=_UNSUPPORTED),
    "700000005": LookupSeed("TIMEOUT", reason=_TIMEOUT),
    "700000006": LookupSeed("ERROR", reason=_ERROR),
    "700000007": LookupSeed("MATCHED", "JANE MARY DOE", masked=True),
    "700000008": LookupSeed("MATCHED", "OTIENO JOHN", scored=False),
    "700000030": LookupSeed("MATCHED", "PETER OKELLO MUSA"),
    "700000031": LookupSeed("ACCOUNT_UNAVAILABLE", reason=_UNAVAILABLE),
    "700000032": LookupSeed("MATCHED", account_status="FROZEN"),
    "700000033": LookupSeed("MATCHED", account_status="RESTRICTED"),
    "700000034": LookupSeed("NOT_ENABLED"),
    "700000035": LookupSeed("MATCHED", timeouts_first=1),
}

BANK_LOOKUPS: dict[str, LookupSeed] = {  # by account number
    "1000000001": LookupSeed("MATCHED"),
    "1000000002": LookupSeed("MATCHED", "SAMUEL KIPRONO KOECH"),
    "1000000003": LookupSeed("MATCHED", account_status="FROZEN"),
    "1000000004": LookupSeed("MATCHED", account_status="RESTRICTED"),
    "1000000005": LookupSeed("NOT_FOUND", reason="No account with this number at this bank."),
    "1000000006": LookupSeed("UNSUPPORTED", reason=_UNSUPPORTED),
    "1000000007": LookupSeed("ERROR", reason=_ERROR),
    "1000000008": LookupSeed("ACCOUNT_UNAVAILABLE", reason=_UNAVAILABLE),
    "1000000009": LookupSeed("NOT_ENABLED"),
}

SHORTCODE_LOOKUPS: dict[str, LookupSeed] = {  # tills and paybills, by shortcode
    "100001": LookupSeed("MATCHED", "ACME TRADING LIMITED"),
    "100002": LookupSeed("NOT_FOUND", reason="No business is registered to this shortcode."),
    "100003": LookupSeed("ERROR", reason=_ERROR),
}

CALLING_CODES: dict[str, str] = {
    "254": "KE",
    "256": "UG",
    "255": "TZ",
    "233": "GH",
    "260": "ZM",
    "250": "RW",
    "265": "MW",
    "237": "CM",
    "225": "CI",
    "221": "SN",
    "243": "CD",
    "27": "ZA",
}


def country_of_phone(phone: str) -> tuple[CountrySeed, str] | None:
    """The seed country of an international number and its calling code, if we know it."""
    digits = phone.removeprefix("+")
    for code, iso in CALLING_CODES.items():
        if digits.startswith(code):
            found = country(iso)
            return (found, code) if found else None
    return None
