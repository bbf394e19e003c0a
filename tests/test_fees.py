"""Fee estimates: only from the fees this account paid before, labelled as such, else "unknown";
the debit follows the fee arrangement those payouts show."""

from __future__ import annotations

from decimal import Decimal

from batch_payouts.fees import Arrangement, arrangement_of, estimate
from batch_payouts.ledger import FeePaid

D = Decimal


def paid(amount: int, fee: str, received: str | None, method: str = "mobile_money", currency: str = "KES") -> FeePaid:
    return FeePaid(currency, method, D(amount), D(fee), D(received) if received is not None else None)


def test_without_earlier_payouts_the_fee_is_unknown_and_said_plainly() -> None:
    found = estimate("KES", [("mobile_money", D(2000))], [paid(1000, "10", "990", currency="UGX")])
    assert (found.fee, found.debit, found.arrangement) == (None, None, Arrangement.UNKNOWN)
    assert found.basis == (
        "unknown: Kotani publishes no fee table, and this account has no earlier KES payouts recorded here"
    )
    assert found.debit_sentence == "KES 2,000, plus the fees if your wallet pays them (Kotani does not say which)"


def test_fees_the_recipient_paid_before_leave_the_debit_at_the_amounts() -> None:
    earlier = [paid(2000, "20", "1980"), paid(1000, "10", "990")]
    found = estimate("KES", [("mobile_money", D(10000)), ("mobile_money", D(2500))], earlier)
    assert found.fee == D(125) and found.debit == D(12500)
    assert found.basis == "an estimate from the fees of 2 earlier payouts in KES of this account"
    assert found.debit_sentence == (
        "KES 12,500 (earlier payouts took the fee out of what the recipient received, so "
        "the wallet is debited the amounts)"
    )


def test_fees_the_wallet_paid_before_are_added_to_the_debit() -> None:
    found = estimate("KES", [("mobile_money", D(1000))], [paid(500, "20", "500")])
    assert (found.fee, found.debit, found.arrangement) == (D(40), D(1040), Arrangement.WALLET)
    assert found.basis == "an estimate from the fees of 1 earlier payout in KES of this account"
    assert found.debit_sentence == (
        "about KES 1,040 (the amounts plus the estimated fees: earlier recipients received "
        "the full amount; if Kotani invoices your fees instead, KES 1,000)"
    )


def test_each_method_at_its_own_rate_when_known_and_whole_shillings() -> None:
    earlier = [paid(1000, "10", "990"), paid(1000, "33", "967", method="bank")]
    found = estimate("KES", [("mobile_money", D(1555)), ("bank", D(1000)), ("till", D(1000))], earlier)
    # 1% of 1555, 3.3% of 1000, and the till at the currency's overall 2.15%: 15.55 + 33 + 21.5 = 70.05 -> 70
    assert found.fee == D(70)


def test_the_arrangement_is_what_most_earlier_payouts_show() -> None:
    assert arrangement_of([paid(100, "2", "98"), paid(100, "2", "98"), paid(100, "2", "100")]) is Arrangement.RECIPIENT
    assert arrangement_of([paid(100, "2", None), paid(100, "0", "100")]) is Arrangement.UNKNOWN
