"""The web console through starlette's test client: signing in, every page of the journey, and
what each role may and may not do; CSRF, throttling, cookies, escaping, the upload cap, secrets."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from batch_payouts.app import passwords, people, serving
from batch_payouts.app.people import Role
from batch_payouts.app.session import SessionOptions
from batch_payouts.app.workspace import Workspace, WorkspaceOptions
from batch_payouts.console import build_app
from batch_payouts.policy import Policy, parse_policy
from tests.support import serve_app
from tests.test_app import FAST

PASSWORD = "correct horse battery"
TEAM = {"amina": Role.MAKER, "brian": Role.APPROVER, "chao": Role.APPROVER, "dora": Role.VIEWER, "eve": Role.ADMIN}
FILE = (
    "name,phone,country,amount,currency\nAmina Njeri,+254712300001,KE,100,KES\nBrian Otieno,+254712300002,KE,200,KES\n"
)
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@functools.cache
def password_hash() -> str:
    """PASSWORD's argon2 hash, made once: tests/test_people.py adds people the long way."""
    return passwords.hash_password(PASSWORD)


def open_workspace(tmp_path: Path, policy: Policy | None = None, **more: object) -> Iterator[Workspace]:
    with serving.workspace(
        SessionOptions(state_path=tmp_path / "l.db", sandbox=True, attempt_timeout=2.0),
        WorkspaceOptions(policy=policy or parse_policy("[approval]\nsandbox = true\n"), run=FAST, **more),
    ) as ws:  # type: ignore[arg-type]
        with ws.ledger() as ledger:
            for name, role in TEAM.items():
                ledger.add_user(name, role=role.value, password_hash=password_hash(), totp_secret=None)
        yield ws


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    yield from open_workspace(tmp_path)


class Browser:
    """One person's test client: signs in, keeps the session cookie, sends the CSRF token."""

    def __init__(self, workspace: Workspace, *, secure: bool = False) -> None:
        self.client = TestClient(
            build_app(workspace, secure=secure),
            base_url="https://testserver" if secure else "http://testserver",
            follow_redirects=False,
        )
        self.csrf = ""

    def get(self, path: str) -> str:
        answer = self.client.get(path)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:500])
        if found := CSRF.search(answer.text):
            self.csrf = found.group(1)
        return answer.text

    def sign_in(self, name: str, password: str = PASSWORD) -> int:
        self.get("/login")
        answer = self.client.post("/login", data={"username": name, "password": password, "csrf": self.csrf})
        if answer.status_code == 303:
            self.get("/batches")
        return answer.status_code

    def post(self, path: str, data: dict[str, str] | None = None, *, csrf: str | None = None) -> tuple[int, str]:
        answer = self.client.post(path, data={"csrf": self.csrf if csrf is None else csrf, **(data or {})})
        return answer.status_code, answer.headers.get("location") or answer.text

    def upload(self, content: bytes, name: str = "pay.csv", label: str = "2026-11") -> tuple[int, str]:
        answer = self.client.post(
            "/upload", data={"csrf": self.csrf, "label": label}, files={"file": (name, content, "text/csv")}
        )
        return answer.status_code, answer.headers.get("location") or answer.text


def signed_in(workspace: Workspace, name: str) -> Browser:
    browser = Browser(workspace)
    assert browser.sign_in(name) == 303
    return browser


def uploaded(workspace: Workspace, content: str = FILE, label: str = "2026-11", maker: Browser | None = None) -> str:
    """The path of the draft an upload made."""
    maker = maker or signed_in(workspace, "amina")
    code, where = maker.upload(content.encode(), label=label)
    assert code == 303 and where.startswith("/drafts/"), where
    return where


def submitted(workspace: Workspace, content: str = FILE, person: str = "amina") -> str:
    """The id of the batch a person uploaded and submitted for approval."""
    maker = signed_in(workspace, person)
    draft = uploaded(workspace, content, maker=maker)
    maker.get(draft)
    code, where = maker.post(f"{draft}/submit")
    assert code == 303 and where.startswith("/batches/"), where
    return where.removeprefix("/batches/")


def test_pages_need_a_signed_in_person(workspace: Workspace) -> None:
    browser = Browser(workspace)
    for path in ("/batches", "/batches/bx", "/batches/bx/audit", "/batches/bx/download/results.csv", "/people"):
        answer = browser.client.get(path)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login?next=")
    login = browser.get("/login")
    assert 'for="username">Username</label>' in login and 'for="password">Password</label>' in login
    assert ">Sign in</button>" in login and "SANDBOX" in login


def test_the_whole_journey_through_the_routes(workspace: Workspace) -> None:
    maker = signed_in(workspace, "amina")
    page = maker.get("/batches")
    assert 'for="file">Payout file</label>' in page and ">Upload</button>" in page and ">Sign out</button>" in page
    code, draft = maker.upload(FILE.encode())
    assert code == 303 and draft.startswith("/drafts/")
    assert f'<a href="{draft}">2026-11</a>' in maker.get("/batches")

    review = maker.get(draft)
    assert "Amina Njeri" in review and "Payout balance" in review and "10,000,000" in review
    assert "Total: <strong>KES 300</strong>" in review and review.count("will be paid") == 2
    assert 'for="map_phone">phone</label>' in review and ">Change column mapping</button>" in review
    assert ">Submit for approval</button>" in review and "Approve and pay" not in review
    code, where = maker.post(f"{draft}/submit")
    assert code == 303
    batch_id = where.removeprefix("/batches/")
    assert f'<a href="/batches/{batch_id}">{batch_id}</a>' in maker.get(draft)

    approver = signed_in(workspace, "brian")
    listing = approver.get("/batches")
    assert f'<a href="/batches/{batch_id}">2026-11</a>' in listing and "awaiting approval" in listing
    page = approver.get(f"/batches/{batch_id}")
    assert (
        'for="total">Type the total to confirm</label>' in page and "Expected total: <strong>KES 300</strong>" in page
    )
    assert approver.post(f"/batches/{batch_id}/approve", {"total": "KES 300"}) == (303, f"/batches/{batch_id}")
    assert workspace.runs.wait(batch_id, 60)

    with approver.client.stream("GET", f"/batches/{batch_id}/events") as events:
        text = "".join(events.iter_text())
    assert "event: progress" in text and '"word": "paid", "currency": "KES", "rows": 2, "amount": "300"' in text
    assert "event: done" in text

    done = approver.get(f"/batches/{batch_id}?show=paid")
    assert 'role="status"' in done and "2 paid: KES 300" in done and "2 rows (paid)" in done
    assert "0 rows (failed)" in approver.get(f"/batches/{batch_id}?show=failed")
    results = approver.client.get(f"/batches/{batch_id}/download/results.csv")
    assert results.status_code == 200 and "Amina Njeri" in results.text
    assert results.headers["content-disposition"] == f'attachment; filename="pay.{batch_id}.results.csv"'
    xlsx = approver.client.get(f"/batches/{batch_id}/download/results.xlsx")
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
    report = approver.client.get(f"/batches/{batch_id}/download/validation.csv")
    assert report.status_code == 200 and "problems" in report.text.splitlines()[0]
    audit = approver.get(f"/batches/{batch_id}/audit")
    for who, what in (("amina", "uploaded"), ("amina", "submitted for approval"), ("brian", "approved")):
        assert re.search(rf"<td>{who}</td><td>{what}</td>", audit), (who, what)


# -- who may do what ----------------------------------------------------------------------------------


def test_a_maker_cannot_approve_even_their_own_batch(workspace: Workspace) -> None:
    batch_id = submitted(workspace)
    maker = signed_in(workspace, "amina")
    page = maker.get(f"/batches/{batch_id}")
    assert "Approve and pay" not in page
    code, text = maker.post(f"/batches/{batch_id}/approve", {"total": "KES 300"})
    assert code == 403 and "amina is a maker and may not approve a batch" in text


def test_an_approver_cannot_approve_the_batch_they_submitted_under_the_rule(workspace: Workspace) -> None:
    batch_id = submitted(workspace, person="brian")
    approver = signed_in(workspace, "brian")
    assert "Approve and pay" not in approver.get(f"/batches/{batch_id}")
    code, text = approver.post(f"/batches/{batch_id}/approve", {"total": "KES 300"})
    assert code == 403 and f"brian submitted batch {batch_id}; the two-person rule needs another approver" in text


def test_a_wrong_total_approves_nothing(workspace: Workspace) -> None:
    batch_id = submitted(workspace)
    approver = signed_in(workspace, "brian")
    approver.get(f"/batches/{batch_id}")
    code, text = approver.post(f"/batches/{batch_id}/approve", {"total": "KES 3000"})
    assert code == 400 and "the total typed (KES 3000) is not the batch&#39;s total (KES 300)" in text
    assert not workspace.runs.running(batch_id) and "awaiting approval" in approver.get(f"/batches/{batch_id}")


@pytest.fixture(scope="module")
def awaiting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, str]]:
    """One batch awaiting approval, for the refusals (which change nothing)."""
    for ws in open_workspace(tmp_path_factory.mktemp("awaiting")):
        yield ws, submitted(ws)


@pytest.mark.parametrize(
    ("name", "path", "data", "message"),
    [
        ("dora", "/batches/{id}/approve", {"total": "KES 300"}, "dora is a viewer and may not approve a batch"),
        ("dora", "/batches/{id}/submit", {}, "dora is a viewer and may not submit a batch for approval"),
        ("dora", "/batches/{id}/retry", {}, "dora is a viewer and may not ask for a retry of failed rows"),
        ("dora", "/batches/{id}/accept", {"row": "2"}, "dora is a viewer and may not accept a held row"),
        ("amina", "/batches/{id}/accept", {"row": "2"}, "amina is a maker and may not accept a held row"),
        ("eve", "/batches/{id}/approve", {"total": "KES 300"}, "eve is a admin and may not approve a batch"),
        (
            "amina",
            "/people",
            {"name": "x", "role": "admin", "password": PASSWORD},
            "amina is a maker and may not manage people",
        ),
        ("brian", "/people/disable", {"name": "amina"}, "brian is a approver and may not manage people"),
    ],
)
def test_each_role_is_refused_what_it_may_not_do(
    awaiting: tuple[Workspace, str], name: str, path: str, data: dict[str, str], message: str
) -> None:
    workspace, batch_id = awaiting
    person = signed_in(workspace, name)
    code, text = person.post(path.replace("{id}", batch_id), data)
    assert code == 403 and message in text
    assert not workspace.runs.running(batch_id)


def test_a_viewer_reads_but_cannot_upload_or_start_a_run(workspace: Workspace) -> None:
    batch_id = submitted(workspace)
    viewer = signed_in(workspace, "dora")
    page = viewer.get("/batches")
    assert "Payout file" not in page and batch_id in page
    detail = viewer.get(f"/batches/{batch_id}")
    assert "Approve and pay" not in detail and "Submit for approval" not in detail
    assert viewer.upload(FILE.encode())[0] == 403
    assert viewer.client.get("/people").status_code == 403


def test_an_admin_adds_and_disables_people_and_a_disabled_person_is_signed_out(workspace: Workspace) -> None:
    maker = signed_in(workspace, "amina")
    admin = signed_in(workspace, "eve")
    admin.get("/people")
    code, text = admin.post("/people", {"name": "fatuma", "role": "maker", "password": PASSWORD})
    assert code == 200 and "Added fatuma as maker." in text
    assert admin.post("/people/disable", {"name": "amina"}) == (303, "/people")
    assert maker.client.get("/batches").status_code == 303, "the next request of a disabled person signs them out"
    assert Browser(workspace).sign_in("amina") == 401
    assert Browser(workspace).sign_in("fatuma") == 303


# -- security ----------------------------------------------------------------------------------------


def test_state_changing_forms_without_the_right_csrf_token_are_refused(workspace: Workspace) -> None:
    batch_id = submitted(workspace)
    approver = signed_in(workspace, "brian")
    for token in ("", "forged-token"):
        code, text = approver.post(f"/batches/{batch_id}/approve", {"total": "KES 300"}, csrf=token)
        assert code == 403 and "This form has expired or did not come from this console" in text
    answer = approver.client.post("/upload", data={"label": "x"}, files={"file": ("pay.csv", FILE.encode())})
    assert answer.status_code == 403
    assert approver.client.post("/logout").status_code == 403
    fresh = Browser(workspace)
    fresh.get("/login")
    assert fresh.client.post("/login", data={"username": "brian", "password": PASSWORD}).status_code == 403
    assert not workspace.runs.running(batch_id) and workspace.runs.state(batch_id) is None


def test_sign_in_is_throttled_after_repeated_failures(workspace: Workspace) -> None:
    browser = Browser(workspace)
    for _ in range(5):
        assert browser.sign_in("brian", "not the password") == 401
    assert browser.sign_in("brian") == 429, "even the right password waits once the name is throttled"
    page = browser.client.post("/login", data={"username": "brian", "password": PASSWORD, "csrf": browser.csrf})
    assert re.search(r"too many failed sign-ins; try again in (300|29\d) s", page.text)


def test_the_session_cookie_is_signed_httponly_strict_and_secure_under_tls(workspace: Workspace) -> None:
    plain = Browser(workspace)
    plain.get("/login")
    answer = plain.client.post("/login", data={"username": "amina", "password": PASSWORD, "csrf": plain.csrf})
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=28800" in cookie
    assert "Secure" not in cookie
    secure = Browser(workspace, secure=True)
    secure.get("/login")
    answer = secure.client.post("/login", data={"username": "amina", "password": PASSWORD, "csrf": secure.csrf})
    assert "Secure" in answer.headers["set-cookie"]

    forged = Browser(workspace)
    forged.client.cookies.set("bp_session", answer.headers["set-cookie"].split(";")[0].split("=", 1)[1] + "x")
    assert forged.client.get("/batches").status_code == 303


def test_a_session_expires(workspace: Workspace) -> None:
    now = [1_800_000_000.0]
    browser = Browser(workspace)
    browser.client = TestClient(build_app(workspace, session_seconds=600, clock=lambda: now[0]), follow_redirects=False)
    assert browser.sign_in("amina") == 303
    now[0] += 599
    assert browser.client.get("/batches").status_code == 200
    now[0] += 2
    answer = browser.client.get("/batches")
    assert answer.status_code == 303 and answer.headers["location"] == "/login?next=/batches"


def test_names_from_the_spreadsheet_are_rendered_escaped(workspace: Workspace) -> None:
    hostile = (
        "name,phone,country,amount,currency\n"
        '"<script>alert(1)</script>",+254712300001,KE,100,KES\n'
        '"=HYPERLINK(""http://evil.example"",""click"")",+254712300002,KE,200,KES\n'
    )
    maker = signed_in(workspace, "amina")
    draft = uploaded(workspace, hostile, label="<img src=x onerror=alert(2)>", maker=maker)
    listing = maker.get("/batches")
    review = maker.get(draft)
    code, where = maker.post(f"{draft}/submit")
    assert code == 303, where
    batch_id = where.removeprefix("/batches/")
    page = maker.get(where) + review
    listing += maker.get("/batches")
    for html in (page, listing):
        assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;img src=x onerror=alert(2)&gt;" in listing
    assert "=HYPERLINK(&#34;http://evil.example&#34;" in page
    assert "script-src 'self'" in maker.client.get("/batches").headers["content-security-policy"]
    results = maker.client.get(f"/batches/{batch_id}/download/results.csv").text
    assert "'=HYPERLINK" in results, "formulas are neutralised in downloads"


def test_uploads_over_the_cap_are_refused_before_reading(tmp_path: Path) -> None:
    for ws in open_workspace(tmp_path, max_file_bytes=1024 * 1024):
        maker = signed_in(ws, "amina")
        code, text = maker.upload(b"name,phone\n" + b"x" * (1024 * 1024 + 70 * 1024))
        assert code == 413 and "is larger than the 1 MB limit for uploads" in text
        code, text = maker.upload(b"a,b\n" + b"x" * (1024 * 1024 + 10))
        assert code == 413
        code, text = maker.upload(b"MZ\x90\x00", name="payload.exe")
        assert code == 400 and "payload.exe: is not a .csv or .xlsx file" in text
        code, text = maker.upload(b"PK\x03\x04garbage", name="book.xlsx")
        assert code == 400


def test_no_secret_in_any_page_download_or_the_ledger(workspace: Workspace, tmp_path: Path) -> None:
    key = workspace.session.key.reveal()
    batch_id = submitted(workspace)
    approver = signed_in(workspace, "brian")
    approver.get(f"/batches/{batch_id}")
    approver.post(f"/batches/{batch_id}/approve", {"total": "KES 300"})
    assert workspace.runs.wait(batch_id, 60)
    seen = [approver.get(p) for p in ("/batches", f"/batches/{batch_id}", f"/batches/{batch_id}/audit")]
    seen += [approver.client.get(f"/batches/{batch_id}/download/{w}").text for w in ("results.csv", "validation.csv")]
    for text in seen:
        assert key not in text and PASSWORD not in text
    ledger_bytes = b"".join(p.read_bytes() for p in (tmp_path / n for n in ("l.db", "l.db-wal")) if p.exists())
    assert key.encode() not in ledger_bytes and PASSWORD.encode() not in ledger_bytes


# -- held rows, failures, retries, the lease, notifications ------------------------------------------

MIXED = (
    "name,phone,country,amount,currency\n"
    "Amina Njeri,+254712300001,KE,100,KES\n"
    "Grace Wanjiru,+254700000030,KE,150,KES\n"  # the account is PETER OKELLO MUSA's: held
    "Brian Otieno,+254700000010,KE,200,KES\n"
)  # fails: insufficient funds on the recipient's account


def approved_and_run(workspace: Workspace, batch_id: str, total: str) -> Browser:
    approver = signed_in(workspace, "brian")
    approver.get(f"/batches/{batch_id}")
    assert approver.post(f"/batches/{batch_id}/approve", {"total": total}) == (303, f"/batches/{batch_id}")
    assert workspace.runs.wait(batch_id, 60)
    return approver


def test_a_held_name_is_accepted_by_an_approver_and_failed_rows_are_retried_with_a_new_approval(
    workspace: Workspace,
) -> None:
    batch_id = submitted(workspace, MIXED)
    approver = approved_and_run(workspace, batch_id, "KES 450")
    page = approver.get(f"/batches/{batch_id}")
    assert "PETER OKELLO MUSA" in page and ">Accept row 3 and pay</button>" in page
    assert "1 failed: KES 200" in page and "1 held (needs a decision): KES 150" in page
    maker = signed_in(workspace, "amina")
    assert "Accept row 3" not in maker.get(f"/batches/{batch_id}")
    assert maker.post(f"/batches/{batch_id}/accept", {"row": "3"})[0] == 403

    assert approver.post(f"/batches/{batch_id}/accept", {"row": "3"}) == (303, f"/batches/{batch_id}")
    assert workspace.runs.wait(batch_id, 60)
    page = approver.get(f"/batches/{batch_id}?show=paid")
    assert "2 paid: KES 250" in page and "2 rows (paid)" in page
    assert "held, then accepted by brian" in page or "accepted" in approver.get(f"/batches/{batch_id}/audit")

    maker.get(f"/batches/{batch_id}")
    code, where = maker.post(f"/batches/{batch_id}/retry")
    assert code == 303
    child = where.removeprefix("/batches/")
    retry_page = approver.get(where)
    assert f'Retry of</dt><dd><a href="/batches/{batch_id}">' in retry_page and "awaiting approval" in retry_page
    assert "Expected total: <strong>KES 200</strong>" in retry_page
    approved_and_run(workspace, child, "KES 200")
    assert "1 failed: KES 200" in approver.get(f"/batches/{child}?show=failed")
    audit = approver.get(f"/batches/{batch_id}/audit")
    assert "<td>amina</td><td>asked for a retry</td>" in audit and "<td>brian</td><td>accepted held row</td>" in audit


def test_a_batch_run_elsewhere_is_not_run_twice(workspace: Workspace, tmp_path: Path) -> None:
    import socket
    import sqlite3

    batch_id = submitted(workspace)
    with sqlite3.connect(tmp_path / "l.db") as db:  # the command line holds the lease (process 1 is alive)
        db.execute(
            "UPDATE batches SET lease_owner = ?, lease_expires = ? WHERE id = ?",
            (f"pid 1 on {socket.gethostname()}", time.time() + 600, batch_id),
        )
    approver = approved_and_run(workspace, batch_id, "KES 300")
    page = approver.get(f"/batches/{batch_id}")
    assert f"batch {batch_id} is being run by pid 1 on {socket.gethostname()}; wait for it to finish" in page
    assert "0 paid" not in page and "2 not sent yet: KES 300" in page
    assert "Pay the rows left (already approved)" in page, "once the other runner is done, it can be paid"


def test_notifications_tell_a_webhook_when_a_batch_awaits_approval_and_when_it_finishes(tmp_path: Path) -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    heard: list[dict[str, str]] = []

    async def hook(request: Request) -> Response:
        heard.append(await request.json())
        return Response("ok")

    with serve_app(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as url:
        for ws in open_workspace(tmp_path, notify_url=url + "/hook"):
            batch_id = submitted(ws)
            ws.notifier.drain()
            approved_and_run(ws, batch_id, "KES 300")
            ws.notifier.drain()
    assert heard[0] == {"text": f"Batch {batch_id} (KES 300) awaits approval; submitted by amina."}
    assert heard[1] == {"text": f"Batch {batch_id} finished: 2 paid (KES 300)."}
    assert len(heard) == 2


def test_a_person_with_a_second_factor_signs_in_with_the_code_of_the_moment(workspace: Workspace) -> None:
    from batch_payouts.app import second_factor

    with workspace.ledger() as ledger:
        people.add_person(ledger, "fatuma", Role.APPROVER, PASSWORD, totp=True)
        secret = ledger.user("fatuma").totp_secret  # type: ignore[union-attr]
    assert secret is not None
    browser = Browser(workspace)
    browser.get("/login")
    wrong = browser.client.post(
        "/login", data={"username": "fatuma", "password": PASSWORD, "code": "000000", "csrf": browser.csrf}
    )
    assert wrong.status_code == 401 and "wrong username, password or code" in wrong.text
    right = browser.client.post(
        "/login",
        data={"username": "fatuma", "password": PASSWORD, "csrf": browser.csrf, "code": second_factor.code_now(secret)},
    )
    assert right.status_code == 303 and right.headers["location"] == "/batches"


def test_a_paid_twice_verdict_is_told_to_the_webhook(tmp_path: Path) -> None:
    """PAID TWICE cannot be made on purpose through the console; the message is checked from a
    verdict that says so, built from two real rows of a finished batch."""
    import dataclasses

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from batch_payouts.app.status import PaidTwice

    heard: list[dict[str, str]] = []

    async def hook(request: Request) -> Response:
        heard.append(await request.json())
        return Response("ok")

    with serve_app(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as url:
        for ws in open_workspace(tmp_path, notify_url=url + "/hook"):
            batch_id = submitted(ws)
            approved_and_run(ws, batch_id, "KES 300")
            ws.notifier.drain()
            heard.clear()
            state = ws.runs.state(batch_id)
            assert state is not None and state.outcome is not None
            with ws.ledger() as ledger:
                first, second = ledger.rows(batch_id)
            verdict = dataclasses.replace(state.outcome.status.verdict, paid_twice=[PaidTwice(first, second)])
            status = dataclasses.replace(state.outcome.status, verdict=verdict)
            ws._finished(
                batch_id, dataclasses.replace(state, outcome=dataclasses.replace(state.outcome, status=status))
            )
            ws.notifier.drain()
    assert heard[-1] == {"text": f"PAID TWICE in batch {batch_id}: row 2 and batch {batch_id} row 3."}


def test_the_column_mapping_of_an_upload_can_be_changed_before_it_is_submitted(workspace: Workspace) -> None:
    two_phones = "name,phone,backup phone,country,amount,currency\nAmina Njeri,+254712300001,12,KE,100,KES\n"
    maker = signed_in(workspace, "amina")
    draft = uploaded(workspace, two_phones, maker=maker)
    page = maker.get(draft)
    assert '<option value="phone" selected>phone</option>' in page and "will be paid" in page

    assert maker.post(f"{draft}/mapping", {"map_phone": "backup phone"}) == (303, draft)

    page = maker.get(draft)
    assert '<option value="backup phone" selected>backup phone</option>' in page
    assert "will not be paid" in page and "error: phone:" in page
    code, text = maker.post(f"{draft}/mapping", {"map_salary": "phone"})
    assert code == 400 and "&#39;salary&#39; is not a column batch-payouts knows" in text
    code, text = maker.post(f"{draft}/mapping", {"map_phone": "no such header"})
    assert code == 400
    viewer = signed_in(workspace, "dora")
    viewer.get(draft)
    assert viewer.post(f"{draft}/mapping", {"map_phone": "phone"})[0] == 403
    assert maker.post(f"{draft}/mapping", {"map_phone": "phone"}) == (303, draft)
    assert maker.post(f"{draft}/submit")[0] == 303
    assert maker.post(f"{draft}/mapping", {"map_phone": "backup phone"})[0] == 409, "submitted: no more changes"
    assert maker.client.get("/drafts/..%2F..%2Fetc%2Fpasswd").status_code == 404
    sneaky = maker.client.get("/drafts/draft.json")
    assert (
        sneaky.status_code == 404 and "no uploaded file &#39;draft.json&#39; is waiting to be submitted" in sneaky.text
    )


def test_signing_in_goes_back_to_the_page_asked_for_but_never_to_another_site(workspace: Workspace) -> None:
    browser = Browser(workspace)
    for asked, lands in (
        ("/batches/bx/audit", "/batches/bx/audit"),
        ("//evil.example/x", "/batches"),
        ("https://evil.example", "/batches"),
        ("/\\evil.example", "/batches"),
    ):
        browser.client.cookies.clear()
        browser.get("/login")
        answer = browser.client.post(
            "/login", data={"username": "amina", "password": PASSWORD, "csrf": browser.csrf, "next": asked}
        )
        assert (answer.status_code, answer.headers["location"]) == (303, lands)


def test_the_review_shows_estimated_fees_and_rows_the_guardrails_hold(workspace: Workspace) -> None:
    twice = FILE + "Brian Otieno,+254712300002,KE,200,KES\n"
    maker = signed_in(workspace, "amina")
    review = maker.get(uploaded(workspace, twice, maker=maker))
    assert "Estimated fees" in review and ("about KES" in review or "unknown" in review)
    assert "Rows to look at" in review and "duplicate" in review
    assert review.count("will be paid") == 2 and review.count("will not be paid") == 1


def test_a_file_whose_amount_column_is_not_recognised_is_mapped_in_its_review(workspace: Workspace) -> None:
    unusual = "name,phone,country,Stipend due,currency\nAmina Njeri,+254712300001,KE,100,KES\n"
    maker = signed_in(workspace, "amina")
    draft = uploaded(workspace, unusual, maker=maker)
    page = maker.get(draft)
    assert "required columns missing: amount: choose below which column of the file holds amount" in page
    assert '<option value="Stipend due">Stipend due</option>' in page and "Submit for approval" not in page

    assert maker.post(f"{draft}/mapping", {"map_amount": "Stipend due"}) == (303, draft)

    page = maker.get(draft)
    assert '<option value="Stipend due" selected>Stipend due</option>' in page and "will be paid" in page
    assert maker.post(f"{draft}/submit")[0] == 303


def test_a_drafts_page_works_out_which_rows_will_be_paid_once_not_once_per_row(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page of a draft told each row whether it will be paid by making the set of payable rows
    again for every row: a 100,000-row upload never rendered (ten billion steps). It is made once
    for the page (and once by the plan behind it)."""
    from batch_payouts.engine.plan import NewBatch

    made: list[int] = []
    sendable = NewBatch.sendable.fget
    assert sendable is not None
    monkeypatch.setattr(NewBatch, "sendable", property(lambda self: made.append(1) or sendable(self)))
    rows = "".join(f"P{n},+2547120{n:05d},KE,{100 + n},KES\n" for n in range(40))
    page = signed_in(workspace, "amina").get(uploaded(workspace, "name,phone,country,amount,currency\n" + rows))
    assert page.count("will be paid") == 40 and len(made) <= 2


# -- a large batch, a page at a time --------------------------------------------------------------------


def many_rows(count: int, *, invalid_every: int = 0) -> str:
    """A payout file of ``count`` rows (rows 2 to count + 1 of the file); every ``invalid_every``-th
    (the first included) has a phone number too short to be paid."""
    lines = ["name,phone,country,amount,currency"]
    for n in range(count):
        phone = "+2547120" if invalid_every and n % invalid_every == 0 else f"+2547120{n:05d}"
        lines.append(f"P{n},{phone},KE,{100 + n % 7},KES")
    return "\n".join(lines) + "\n"


def decoded_rows(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that grows by one for every ledger row decoded from here on."""
    from batch_payouts.ledger import Ledger

    decoded: list[int] = []
    record = Ledger._record
    monkeypatch.setattr(Ledger, "_record", lambda self, r: decoded.append(1) or record(self, r))
    return decoded


def row_headers(page: str) -> list[int]:
    return [int(n) for n in re.findall(r'<th scope="row">(\d+)</th>', page)]


def test_a_batchs_page_shows_its_rows_a_hundred_at_a_time_and_decodes_no_others(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 100,000-row batch's page took 18 s and was 22 MB of HTML: every row was decoded and shown.
    Rows now come a page at a time; counts, totals, stage and progress are asked of the ledger."""
    batch_id = submitted(workspace, many_rows(250))
    approver = signed_in(workspace, "brian")
    decoded = decoded_rows(monkeypatch)

    first = approver.get(f"/batches/{batch_id}")
    assert "250 rows (all): rows 1 to 100 shown, page 1 of 3" in first and row_headers(first) == list(range(2, 102))
    assert len(decoded) <= 100 + 8  # the page's rows and the latest events
    assert 'href="?show=all&amp;page=2" rel="next"' in first and 'rel="prev"' not in first
    assert '>All</a> <span class="count">(250)</span>' in first and '>Paid</a> <span class="count">(0)</span>' in first
    assert "Expected total: <strong>KES 25745</strong>" in first and "Not running: 0 of 250 rows settled" in first

    last = approver.get(f"/batches/{batch_id}?page=3")
    assert "rows 201 to 250 shown, page 3 of 3" in last and row_headers(last) == list(range(202, 252))
    assert 'href="?show=all&amp;page=2" rel="prev"' in last and 'rel="next"' not in last
    assert row_headers(approver.get(f"/batches/{batch_id}?page=99")) == list(range(202, 252))
    assert row_headers(approver.get(f"/batches/{batch_id}?page=nine&show=bogus")) == list(range(2, 102))
    assert "0 rows (paid)" in approver.get(f"/batches/{batch_id}?show=paid&page=2")


def test_the_batches_list_and_a_batchs_progress_decode_no_row(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch_id = submitted(workspace, many_rows(120))
    approver = signed_in(workspace, "brian")
    decoded = decoded_rows(monkeypatch)
    listing = approver.get("/batches")
    assert f'<a href="/batches/{batch_id}">2026-11</a>' in listing and "KES 12357" in listing and decoded == []
    assert approver.post(f"/batches/{batch_id}/approve", {"total": "KES 12357"})[0] == 303
    assert workspace.runs.wait(batch_id, 60)
    decoded.clear()
    person = workspace.person("brian")
    assert person is not None
    progress = workspace.progress(person, batch_id)
    assert (progress.rows, progress.settled, len(progress.recent)) == (120, 120, 8) and len(decoded) == 8
    assert [line.status for line in progress.lines] == ["paid"]


def test_a_drafts_rows_come_a_page_at_a_time_and_one_filter_shows_every_row_not_paid(workspace: Workspace) -> None:
    maker = signed_in(workspace, "amina")
    draft = uploaded(workspace, many_rows(250, invalid_every=50), maker=maker)

    page = maker.get(draft)
    assert "250 rows: rows 1 to 100 shown, page 1 of 3" in page and row_headers(page)[:100] == list(range(2, 102))
    assert '>To look at</a> <span class="count">(5)</span>' in page
    assert 'href="?show=all&amp;page=2" rel="next"' in page

    problems = maker.get(f"{draft}?show=problems")
    assert "5 rows (to look at: not paid, a problem or a check)</caption>" in problems
    assert problems.count("will not be paid") == 5
    assert [n for n in row_headers(problems) if n in (2, 52, 102, 152, 202)] == [2, 52, 102, 152, 202]
    assert maker.post(f"{draft}/submit")[0] == 303


def test_a_drafts_rows_to_look_at_are_listed_a_hundred_at_most_with_how_many_more(workspace: Workspace) -> None:
    twice = "name,phone,country,amount,currency\n" + "".join(
        f"P{n},+2547120{n:05d},KE,100,KES\n" * 2 for n in range(130)
    )
    page = signed_in(workspace, "amina").get(uploaded(workspace, twice))
    table = page[page.index("Rows to look at") : page.index("Submit for approval")]
    assert table.count("<tr") == 1 + 100
    assert "And 30 more rows to look at: see the rows below, filtered “To look at”." in table


OTHER_NAME = '{"isValid":true,"isSupported":true,"accountType":"mobile_money","accountName":"Somebody Else Entirely"}'


def test_every_row_to_look_at_is_under_its_filter_with_its_reason_beyond_the_first_hundred(
    workspace: Workspace,
) -> None:
    """Past the first hundred rows to look at, a payee the payee check found under another name was
    on no list: its row said only "will be paid"."""
    maker = signed_in(workspace, "amina")
    draft = uploaded(workspace, many_rows(250), maker=maker)
    with workspace.ledger() as ledger:
        for n in range(1, 250, 2):
            payee, env = f"mobile_money:+2547120{n:05d}", workspace.environment.id
            ledger.remember_lookup(env, payee, f"P{n}", OTHER_NAME, ledger.clock())
    page = maker.get(draft)
    assert "And 25 more rows to look at" in page and '>To look at</a> <span class="count">(125)</span>' in page
    last = maker.get(f"{draft}?show=problems&page=2")
    assert "125 rows (to look at: not paid, a problem or a check): rows 101 to 125 shown" in last
    table = last[last.index('id="rows-h"') :]
    assert row_headers(table)[-1] == 251 and table.count("The account holder is Somebody Else Entirely") == 25


def test_a_clean_drafts_submit_button_stays_under_every_filter(workspace: Workspace) -> None:
    maker = signed_in(workspace, "amina")
    draft = uploaded(workspace, maker=maker)
    problems = maker.get(f"{draft}?show=problems")
    assert (
        "0 rows (to look at: not paid, a problem or a check)" in problems
        and ">Submit for approval</button>" in problems
    )


@pytest.mark.parametrize("number", ["%C2%B2", "9" * 4301, "-1", "0", "1e3", "%EF%BC%92"])
def test_a_page_number_that_is_not_a_plain_number_shows_the_first_page(workspace: Workspace, number: str) -> None:
    batch_id = submitted(workspace)
    maker = signed_in(workspace, "amina")
    for path in (f"/batches/{batch_id}?page={number}", f"{uploaded(workspace, maker=maker, label='x')}?page={number}"):
        answer = maker.client.get(path)
        assert answer.status_code == 200 and "2 rows" in answer.text, path


def test_live_progress_of_a_large_batch_takes_at_most_a_tenth_of_a_core_per_page() -> None:
    """Each event reads the batch's counts and sums: 0.09 s at 100,000 rows, every half second was
    a sixth of a core for each page left open on a run that lasts a day."""
    from batch_payouts.console.progress import wait_after

    assert wait_after(0.004) == 0.5 and wait_after(0.05) == pytest.approx(0.5)
    assert wait_after(0.09) == pytest.approx(0.81) and wait_after(0.09) / (0.09 + wait_after(0.09)) > 0.89
