"""What the provider supports: countries, their currency and networks, banks per currency.

Fetched once per run through the client (docs/provider.md) and handed to validation as data. Country cells are read
through the local ISO 3166 table of ``countries.py``, never through optional fields of the answer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

import anyio

from batch_payouts import countries, errors
from batch_payouts.kotani import wire
from batch_payouts.kotani.client import KotaniClient

# Where USD mobile money is documented (docs/provider.md, "Countries, networks, banks").
USD_COUNTRIES = frozenset({"ZM", "CD"})
BANK_COUNTRIES = {"KE": "KES", "ZA": "ZAR"}
# At most this many catalog reads at once: with today's 12 countries and 2 bank lists, one wave,
# inside the provider's burst of 20 reads per 5 s. In one wave no read can start after another's
# 429 came back, so none is sent into a wait it could have known of.
CATALOG_PARALLEL_READS = 16


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


async def fetch_catalog(client: KotaniClient, *, parallel: int = CATALOG_PARALLEL_READS) -> Catalog:
    """Countries (with their networks) and the KES and ZAR bank lists.

    The countries list comes first (it names the other reads); then every country's networks and
    the bank lists are read together, at most ``parallel`` at a time. A 429 on any of them holds
    every read not yet sent (the client's class hold); reads already on their way when it came
    back were sent before it was known, and a refused one is sent again after the wait.
    """
    countries = await client.list_countries("WITHDRAW")
    limiter = anyio.CapacityLimiter(max(1, parallel))
    nets: dict[str, tuple[tuple[str, ...], bool] | None] = {}
    banks: dict[str, list[wire.Bank]] = {}

    async def networks_of(code: str) -> None:
        async with limiter:
            try:
                found = await client.networks(code)
            except errors.NotFound:
                nets[code] = None
                return
        nets[code] = (tuple(n.upper() for n in found.networks), found.is_required)

    async def banks_of(currency: str) -> None:
        async with limiter:
            banks[currency] = await client.list_banks(currency)

    with first_error():
        async with anyio.create_task_group() as group:
            for country in countries:
                group.start_soon(networks_of, country.country_code)
            for currency in BANK_COUNTRIES.values():
                group.start_soon(banks_of, currency)
    infos: dict[str, CountryInfo] = {}
    for country in countries:
        networks, required = nets[country.country_code] or (tuple(country.supported_networks),
                                                            country.requires_network)
        infos[country.country_code.upper()] = CountryInfo(
            code=country.country_code.upper(), name=country.name, currency=country.currency.upper(),
            networks=networks, network_required=required)
    bank_map = {cur: {b.code: b.name for b in banks[cur]} for cur in BANK_COUNTRIES.values()}
    return Catalog(infos, bank_map)


async def fetch_catalog_and_balances(client: KotaniClient) -> tuple[Catalog, dict[str, Decimal]]:
    """The catalog and the wallets' balances (currency -> major units), read at the same time: the
    wallets read goes out with the countries list instead of after every catalog read."""
    found: dict[str, Decimal] = {}
    catalogs: list[Catalog] = []

    async def wallets() -> None:
        found.update({w.currency.upper(): w.balance for w in await client.list_wallets()})

    async def catalog() -> None:
        catalogs.append(await fetch_catalog(client))

    with first_error():
        async with anyio.create_task_group() as group:
            group.start_soon(catalog)
            group.start_soon(wallets)
    return catalogs[0], found


@contextlib.contextmanager
def first_error() -> Iterator[None]:
    """Reads run together fail as one: the first of our errors, not a group of them."""
    try:
        yield
    except BaseExceptionGroup as group:
        ours = [e for e in _leaves(group) if isinstance(e, errors.BatchPayoutsError)]
        if ours:
            raise ours[0] from None
        raise


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found += _leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc]
    return found
