"""Webhook signatures are HMAC-SHA256 over the compact JSON of the body without `signature`."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import subprocess
from decimal import Decimal

import pytest

from batch_payouts.kotani import webhooks
from tests.figures import record

pytestmark = pytest.mark.campaign  # bench/reliability.py runs this file and reports its figures

SECRET = "whsec_test"
# Written by hand, byte for byte, the way JavaScript's JSON.stringify prints it.
LITERAL = (
    b'{"event":"transaction.withdrawal.status.updated","data":{"status":"SUCCESSFUL",'
    b'"referenceId":"bk1-2-1","referenceNumber":80412233,"amount":1500,"transactionCost":15.5,'
    b'"accountName":"Nj\xc3\xa9ri W\xc3\xa4ng\xc3\xa9"}}'
)


def independent_signature(data: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def delivered(literal: bytes, sig: str) -> bytes:
    """The delivered body: the signed object plus its signature member."""
    return literal[:-1] + b',"signature":"' + sig.encode() + b'"}'


def test_signature_matches_an_hmac_over_the_literal_bytes() -> None:
    payload = json.loads(LITERAL, parse_float=Decimal)
    assert webhooks.signature(payload, SECRET) == independent_signature(LITERAL, SECRET)


def test_a_genuine_delivery_verifies() -> None:
    sig = independent_signature(LITERAL, SECRET)
    assert webhooks.verify(delivered(LITERAL, sig), sig, [SECRET])


def test_a_rotated_secret_verifies_when_listed() -> None:
    sig = independent_signature(LITERAL, "old-secret")
    assert webhooks.verify(delivered(LITERAL, sig), sig, [SECRET, "old-secret"])
    assert not webhooks.verify(delivered(LITERAL, sig), sig, [SECRET])


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.replace(b"1500", b"1501"),
        lambda b: b.replace(b"SUCCESSFUL", b"FAILED"),
        lambda b: b.replace(b'{"event"', b'{"extra":1,"event"'),
        lambda b: b.replace(b"bk1-2-1", b"bk1-3-1"),
    ],
    ids=["amount", "status", "extra-member", "other-reference"],
)
def test_a_body_changed_after_signing_is_refused(mutate: object) -> None:
    sig = independent_signature(LITERAL, SECRET)
    body = mutate(delivered(LITERAL, sig))  # type: ignore[operator]
    assert not webhooks.verify(body, sig, [SECRET])


@pytest.mark.parametrize(
    "header",
    [None, "", "sha256=", "sha1=" + "0" * 64, "SHA256=", "sha256=zz", "deadbeef"],
    ids=["missing", "empty", "bare-prefix", "other-prefix", "upper-prefix", "not-hex", "no-prefix"],
)
def test_missing_or_malformed_headers_are_refused(header: str | None) -> None:
    sig = independent_signature(LITERAL, SECRET)
    if header == "SHA256=":
        header = sig.upper()
    assert not webhooks.verify(delivered(LITERAL, sig), header, [SECRET])


def test_wrong_secret_and_truncated_signature_are_refused() -> None:
    sig = independent_signature(LITERAL, SECRET)
    assert not webhooks.verify(delivered(LITERAL, sig), sig, ["wrong"])
    assert not webhooks.verify(delivered(LITERAL, sig), sig[:-1], [SECRET])
    assert not webhooks.verify(b"not json", sig, [SECRET])
    assert not webhooks.verify(b"[1,2]", sig, [SECRET])


def test_exotic_number_tokens_keep_their_exact_text() -> None:
    literal = b'{"event":"e","data":{"referenceId":"r","status":"PENDING","amount":1e-7,"big":1e+21}}'
    sig = independent_signature(literal, SECRET)
    assert webhooks.verify(delivered(literal, sig), sig, [SECRET])


def test_signed_body_round_trips_through_verify_and_parse() -> None:
    data = {"status": "FAILED", "referenceId": "r-1", "amount": Decimal("1500.50"), "name": "Zoë 😀"}
    body, sig = webhooks.signed_body(webhooks.WITHDRAWAL_EVENT, data, SECRET)
    assert b'"amount":1500.5' in body
    assert webhooks.verify(body, sig, [SECRET])
    event = webhooks.parse_event(body)
    assert (event.mode, event.reference_id, event.status) == ("signed", "r-1", "FAILED")


def test_both_delivery_modes_parse_into_one_event_type() -> None:
    direct = webhooks.parse_event(b'{"referenceId":"r-9","status":"SUCCESSFUL","amount":10}')
    signed = webhooks.parse_event(LITERAL)
    assert direct.mode == "direct" and direct.event == webhooks.WITHDRAWAL_EVENT
    assert signed.mode == "signed" and signed.reference_id == "bk1-2-1"
    assert signed.data["accountName"] == "Njéri Wängé"


@pytest.mark.parametrize("body", [b"", b"[]", b'{"status":"X"}', b'{"referenceId":"", "status":"X"}', b"NaN"])
def test_unreadable_events_raise_malformed(body: bytes) -> None:
    with pytest.raises(webhooks.MalformedWebhook):
        webhooks.parse_event(body)


NODE_SIGNER = r"""
const crypto = require('crypto');
const [secret, json] = [process.argv[1], process.argv[2]];
const payload = JSON.parse(json);
const body = JSON.stringify(payload);
const sig = 'sha256=' + crypto.createHmac('sha256', secret).update(body).digest('hex');
payload.signature = sig;
process.stdout.write(JSON.stringify({body: JSON.stringify(payload), sig}));
"""


def node() -> str:
    """Node.js, whose JSON.stringify signs these deliveries as the provider's servers do. Missing, it
    fails the test in CI (``CI`` set: .ci/run installs Node.js) and skips it elsewhere, saying why."""
    found = shutil.which("node")
    if found is None:
        why = (
            "Node.js is not installed: this test signs deliveries with the real JSON.stringify "
            "(apt-get install -y nodejs; .ci/run installs it)"
        )
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    return found


@pytest.mark.parametrize("amount", ["1500", "0.1", "123456789.25", "1e-7", "99999999999"])
def test_deliveries_signed_by_real_json_stringify_verify(amount: str) -> None:
    obj = (
        '{"event":"transaction.withdrawal.status.updated","data":{"referenceId":"x-1",'
        '"status":"SUCCESSFUL","amount":' + amount + ',"name":"Ñandú Ōkubo 北京"}}'
    )
    out = subprocess.run([node(), "-e", NODE_SIGNER, "rotated", obj], capture_output=True, check=True, text=True)
    result = json.loads(out.stdout)
    ok = webhooks.verify(result["body"].encode(), result["sig"], ["current", "rotated"])
    record("genuine_deliveries", 1)
    record("genuine_rejected", 0 if ok else 1)
    assert ok


def test_verification_goes_through_the_constant_time_compare(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(webhooks.hmac, "compare_digest", spy)
    sig = independent_signature(LITERAL, SECRET)
    assert webhooks.verify(delivered(LITERAL, sig), sig, [SECRET, "other"])
    assert len(calls) == 2, "every secret is compared in constant time"
