"""What the provider supports: countries, their currency and networks, banks per currency.

Plain data, handed to validation (which therefore never reaches the network): ``catalog_reads.py``
reads it from the provider once per run (docs/provider.md). Country cells are read through the local
ISO 3166 table of ``countries.py``, never through optional fields of the answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from batch_payouts import countries

# Where USD mobile money is documented (docs/provider.md, "Countries, networks, banks").
USD_COUNTRIES = frozenset({"ZM", "CD"})
BANK_COUNTRIES = {"KE": "KES", "ZA": "ZAR"}
# The countries the provider is known to pay out to (docs/provider.md): their networks are read
# alongside the countries list instead of after it. The list the provider gives is what counts.
EXPECTED_COUNTRIES = ("KE", "UG", "TZ", "GH", "ZM", "RW", "MW", "CM", "CI", "SN", "CD", "ZA")


@dataclass(frozen=True)
class CountryInfo:
    code: str
    name: str
    currency: str
    networks: tuple[str, ...] = ()
    network_required: bool = False


@dataclass(frozen=True)
class Catalog:
    """Runtime data about what can be paid where."""

    countries: dict[str, CountryInfo]
    banks: dict[str, dict[str, str]] = field(default_factory=dict)  # currency -> code -> name

    def country(self, text: str) -> CountryInfo | None:
        """Look a country up by ISO-2 or ISO-3 code or English name (the local ISO 3166 table, then
        the name the provider gives the country)."""
        key = text.strip().upper()
        if key in self.countries:
            return self.countries[key]
        iso2 = countries.iso2_for(text)
        if iso2 is not None:
            return self.countries.get(iso2)
        folded = countries.fold(text)
        return next((c for c in self.countries.values() if countries.fold(c.name) == folded), None)

    def currencies_for(self, country: CountryInfo) -> set[str]:
        allowed = {country.currency}
        if country.code in USD_COUNTRIES:
            allowed.add("USD")
        return allowed

    def countries_for_currency(self, currency: str) -> list[CountryInfo]:
        return [c for c in self.countries.values() if c.currency == currency.upper()]
