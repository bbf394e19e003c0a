"""Country cells to ISO 3166 alpha-2 codes, from pycountry's local table (no network, no
provider field): "KE", "KEN", "Kenya", "kenya" and "Côte d'Ivoire"/"Cote d'Ivoire" all resolve.

Numeric codes are not accepted: a number in the country column is more likely a shifted column.
"""

from __future__ import annotations

import unicodedata
from functools import cache

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'", "\u00b4": "'"})


def fold(text: str) -> str:
    """Case, accents, curly apostrophes and runs of spaces set aside: ``" Côte d’Ivoire "`` and
    ``"cote d'ivoire"`` fold alike."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_APOSTROPHES))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.casefold().split())


@cache
def _names() -> dict[str, str]:
    """Folded ISO-3 code, short name, official name and common name -> ISO-2 code."""
    import pycountry  # loaded at the first country name, not at start-up

    index: dict[str, str] = {}
    for country in pycountry.countries:
        for attribute in ("alpha_3", "name", "official_name", "common_name"):
            value = getattr(country, attribute, None)
            if value:
                index.setdefault(fold(str(value)), str(country.alpha_2))
    return index


def iso2_for(text: str) -> str | None:
    """The ISO-2 code ``text`` names (an ISO-2 or ISO-3 code or an English name), else None."""
    folded = fold(text)
    if len(folded) == 2 and folded.isascii() and folded.isalpha():
        return folded.upper() if folded.upper() in _codes() else None
    return _names().get(folded)


@cache
def _codes() -> frozenset[str]:
    """Every ISO-2 code."""
    import pycountry

    return frozenset(str(country.alpha_2) for country in pycountry.countries)
