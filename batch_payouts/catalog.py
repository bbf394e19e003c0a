"""What the provider supports: countries, their currency and networks, banks per currency.

Fetched once per run through the client (docs/provider.md) and handed to validation as data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from batch_payouts import errors
from batch_payouts.kotani.client import KotaniClient

# Where USD mobile money is documented (docs/provider.md, "Countries, networks, banks").
USD_COUNTRIES = frozenset({"ZM", "CD"})
BANK_COUNTRIES = {"KE": "KES", "ZA": "ZAR"}


@dataclass(frozen=True)
class CountryInfo:
    code: str
    name: str
    currency: str
    iso3: str = ""
    networks: tuple[str, ...] = ()
    network_required: bool = False


@dataclass(frozen=True)
class Catalog:
    """Runtime data about what can be paid where."""

    countries: dict[str, CountryInfo]
    banks: dict[str, dict[str, str]] = field(default_factory=dict)  # currency -> code -> name

    def country(self, text: str) -> CountryInfo | None:
        """Look a country up by ISO-2, ISO-3 or English name."""
        key = text.strip().upper()
        if key in self.countries:
            return self.countries[key]
        for info in self.countries.values():
            if key in (info.iso3.upper(), info.name.upper()):
                return info
        return None

    def currencies_for(self, country: CountryInfo) -> set[str]:
        allowed = {country.currency}
        if country.code in USD_COUNTRIES:
            allowed.add("USD")
        return allowed

    def countries_for_currency(self, currency: str) -> list[CountryInfo]:
        return [c for c in self.countries.values() if c.currency == currency.upper()]


async def fetch_catalog(client: KotaniClient) -> Catalog:
    """Countries (with their networks) and the KES and ZAR bank lists. One read at a time: a
    dozen small reads, and a 429 on one must hold every later one (the client does that)."""
    countries = await client.list_countries("WITHDRAW")

    async def networks_of(code: str) -> tuple[tuple[str, ...], bool] | None:
        try:
            found = await client.networks(code)
        except errors.NotFound:
            return None
        return tuple(n.upper() for n in found.networks), found.is_required

    nets = [await networks_of(c.country_code) for c in countries]
    banks = [await client.list_banks(cur) for cur in BANK_COUNTRIES.values()]
    infos: dict[str, CountryInfo] = {}
    for country, found in zip(countries, nets, strict=True):
        extra = country.model_extra or {}
        networks, required = found or (tuple(country.supported_networks), country.requires_network)
        infos[country.country_code.upper()] = CountryInfo(
            code=country.country_code.upper(), name=country.name, currency=country.currency.upper(),
            iso3=str(extra.get("iso3Code") or ""), networks=networks, network_required=required)
    bank_map = {cur: {b.code: b.name for b in listing}
                for cur, listing in zip(BANK_COUNTRIES.values(), banks, strict=True)}
    return Catalog(infos, bank_map)
