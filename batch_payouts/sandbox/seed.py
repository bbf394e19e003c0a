"""Seed data of the sandbox: countries, networks, banks (REFERENCE.md §10; inferred tables)."""

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
    "KES", "UGX", "GHS", "TZS", "RWF", "ZMW", "XOF", "XAF", "ZAR", "USD", "MWK", "CDF",
)

# (code, name) per currency. Kenyan codes are the CBK bank codes; South African codes are
# universal branch codes. The provider's own list is runtime data.
BANKS: dict[str, tuple[tuple[str, str], ...]] = {
    "KES": (
        ("01", "KCB"), ("68", "Equity Bank"), ("11", "Co-operative Bank"), ("03", "ABSA Kenya"),
        ("07", "NCBA Bank"), ("31", "Stanbic Bank Kenya"), ("02", "Standard Chartered Kenya"),
        ("63", "Diamond Trust Bank"), ("70", "Family Bank"), ("66", "Sidian Bank"),
        ("10", "Prime Bank"), ("72", "Gulf African Bank"), ("43", "Ecobank Kenya"),
        ("57", "I&M Bank"), ("19", "Bank of Africa Kenya"), ("23", "Consolidated Bank"),
        ("54", "Victoria Commercial Bank"), ("55", "Guardian Bank"), ("76", "UBA Kenya"),
        ("51", "Kingdom Bank"), ("16", "Citibank Kenya"),
    ),
    "ZAR": (
        ("632005", "ABSA"), ("250655", "FNB"), ("470010", "Capitec"), ("198765", "Nedbank"),
        ("051001", "Standard"), ("580105", "Investec"), ("430000", "AfricanBank"),
        ("462005", "Bidvest"), ("679000", "DiscoveryBank"), ("678910", "Tyme"),
    ),
}

NETWORK_ENUM: frozenset[str] = frozenset({
    "MTN", "AIRTEL", "VODAFONE", "TIGO", "YAS", "ORANGE", "NOT_SUPPORTED", "ZAMTEL", "MPESA",
    "CHECKOUT", "BKTRX", "CRDTRX", "MOOV", "TMONEY", "FREE", "EXPRESSO", "HALOPESA", "VODACOM",
    "WAVE",
})


def country(code: str) -> CountrySeed | None:
    """The seed for an ISO-2 or ISO-3 code."""
    upper = code.strip().upper()
    return next((c for c in COUNTRIES if upper in (c.code, c.iso3)), None)
