"""Reading the catalog (countries, networks, bank lists) and the wallets from the provider, the
reads run together within the provider's burst allowance."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import anyio

from batch_payouts import errors
from batch_payouts.catalog import BANK_COUNTRIES, EXPECTED_COUNTRIES, Catalog, CountryInfo
from batch_payouts.concurrency import first_error
from batch_payouts.kotani import wire
from batch_payouts.kotani.client import KotaniClient

# At most this many catalog reads at once: with today's 12 countries and 2 bank lists, one wave
# (with the countries list and the wallets: 16 reads), inside the provider's burst of 20 reads per
# 5 s. In one wave no read can start after another's 429 came back, so none is sent into a wait it
# could have known of.
CATALOG_PARALLEL_READS = 16


async def fetch_catalog(
    client: KotaniClient, *, parallel: int = CATALOG_PARALLEL_READS, expected: Iterable[str] = EXPECTED_COUNTRIES
) -> Catalog:
    """Countries (with their networks) and the KES and ZAR bank lists.

    The countries list names the networks to read, but waiting for it costs a round trip: the
    networks of the ``expected`` countries and the bank lists are read at the same time as the
    list, at most ``parallel`` reads at a time (the list first). Once the list is in, the networks of a listed country
    not read that way (not expected, or its read failed) are read; what was read of a country
    the list does not name is dropped. A 429 on any read holds every read not yet sent (the
    client's class hold); reads already on their way when it came back were sent before it was
    known, and a refused one is sent again after the wait.
    """
    limiter = anyio.CapacityLimiter(max(1, parallel))
    listed: list[wire.Country] = []
    nets: dict[str, tuple[tuple[str, ...], bool] | None] = {}
    banks: dict[str, list[wire.Bank]] = {}

    async def countries() -> None:
        async with limiter:
            listed.extend(await client.list_countries("WITHDRAW"))

    async def networks_of(code: str) -> None:
        async with limiter:
            try:
                found = await client.networks(code)
            except errors.NotFound:
                nets[code.upper()] = None
                return
        nets[code.upper()] = (tuple(n.upper() for n in found.networks), found.is_required)

    async def networks_ahead(code: str) -> None:
        """A read ahead of the list: if it fails, the country is read again once it is listed."""
        with contextlib.suppress(errors.ApiError, errors.NoAnswer):
            await networks_of(code)

    async def banks_of(currency: str) -> None:
        async with limiter:
            banks[currency] = await client.list_banks(currency)

    with first_error():
        async with anyio.create_task_group() as group:
            group.start_soon(countries)
            for code in dict.fromkeys(expected):
                group.start_soon(networks_ahead, code)
            for currency in BANK_COUNTRIES.values():
                group.start_soon(banks_of, currency)
    with first_error():
        async with anyio.create_task_group() as group:
            for country in listed:
                if country.country_code.upper() not in nets:  # (codes compared whatever their case)
                    group.start_soon(networks_of, country.country_code)
    infos: dict[str, CountryInfo] = {}
    for country in listed:
        code = country.country_code.upper()
        networks, required = nets[code] or (tuple(country.supported_networks), country.requires_network)
        infos[code] = CountryInfo(
            code=code,
            name=country.name,
            currency=country.currency.upper(),
            networks=networks,
            network_required=required,
        )
    bank_map = {cur: {b.code: b.name for b in banks[cur]} for cur in BANK_COUNTRIES.values()}
    return Catalog(infos, bank_map)


async def fetch_catalog_and_wallets(client: KotaniClient) -> tuple[Catalog, list[wire.Wallet]]:
    """The catalog and the account's wallets, read at the same time: the wallets read goes out with
    the countries list instead of after every catalog read."""
    found: list[wire.Wallet] = []
    catalogs: list[Catalog] = []

    async def wallets() -> None:
        found.extend(await client.list_wallets())

    async def catalog() -> None:
        catalogs.append(await fetch_catalog(client))

    with first_error():
        async with anyio.create_task_group() as group:
            group.start_soon(catalog)
            group.start_soon(wallets)
    return catalogs[0], found
