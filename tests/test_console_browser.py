"""The console in a real browser: Debian's Chromium driven by Playwright against a real
`batch-payouts serve --sandbox` process. Two people walk the whole journey (a held name, a
failure, a retry, the downloads), and meet XSS and CSRF on the way.

Without /usr/bin/chromium these tests are skipped, saying so, except under CI (CI set), where a
missing browser fails them."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batch_payouts.app import people
from batch_payouts.app.people import Role
from batch_payouts.app.status import Where, open_ledger
from tests.support import ConsoleProcess, serve_app

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery"
TIMEOUT = 30_000  # ms a step may take (a run in the sandbox takes a few seconds)
JOURNEY = (
    "name,phone,country,amount,currency\n"
    "Amina Njeri,+254712300001,KE,100,KES\n"
    "Grace Wanjiru,+254700000030,KE,150,KES\n"  # the account is PETER OKELLO MUSA's: held
    "Brian Otieno,+254700000010,KE,200,KES\n"  # fails: insufficient funds on the recipient's account
    '"<script>window.__xss = 1</script>",+254712300004,KE,50,KES\n'
    '"=HYPERLINK(""http://evil.example"",""pay me"")",+254712300005,KE,25,KES\n'
)


def browser_or_skip() -> Any:
    """Playwright's sync API, or a skip (a failure under CI) saying what is missing."""
    missing = None
    if not CHROMIUM.exists():
        missing = f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = missing or "Playwright is not installed (pip install -e '.[test]')"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing}: the browser tests must run in CI")
        pytest.skip(f"{missing}: the browser tests were skipped")
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT)  # a loaded machine: every expectation waits as long as a step may take
    return sync_playwright


def add_people(state: Path) -> None:
    """A maker and an approver, as `batch-payouts users add` makes them (tests/test_people.py runs the command)."""
    with open_ledger(Where(state)) as ledger:
        people.add_person(ledger, "amina", Role.MAKER, PASSWORD)
        people.add_person(ledger, "brian", Role.APPROVER, PASSWORD)


@pytest.fixture(scope="module")
def stage() -> Iterator[tuple[ConsoleProcess, Any]]:
    """The console process and the browser, started side by side."""
    sync_playwright = browser_or_skip()
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "l.db"
        add_people(state)
        with ConsoleProcess(state, wait=False) as running, sync_playwright() as playwright:
            # Playwright gives each launch a fresh temporary user-data-dir; nothing is kept between runs
            launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            try:
                running.ready()
                yield running, launched
            finally:
                launched.close()


@pytest.fixture
def console(stage: tuple[ConsoleProcess, Any]) -> ConsoleProcess:
    return stage[0]


@pytest.fixture
def browser(stage: tuple[ConsoleProcess, Any]) -> Any:
    return stage[1]


def person(browser: Any, console: ConsoleProcess, name: str, **context: Any) -> Any:
    """A page of a new browser context (its own cookies) signed in as ``name``, by keyboard alone."""
    page = browser.new_context(**context).new_page()
    page.set_default_timeout(TIMEOUT)
    page.goto(console.url + "/login")
    page.get_by_label("Username").focus()
    page.keyboard.type(name)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Batches").wait_for()
    return page


def unlabelled(page: Any) -> list[str]:
    """The visible form fields of the page without a label (none may be)."""
    return list(
        page.evaluate("""() => [...document.querySelectorAll("input, select, textarea")]
        .filter(f => f.type !== "hidden" && !(f.labels && f.labels.length) && !f.getAttribute("aria-label"))
        .map(f => f.outerHTML)""")
    )


def wait_for_status(page: Any, text: str) -> None:
    from playwright.sync_api import expect

    expect(page.get_by_role("status")).to_contain_text(text, timeout=TIMEOUT)


def forged_approvals_change_nothing(approver: Any, console: ConsoleProcess, batch_path: str) -> None:
    """A page of another site that posts an approval in the approver's browser, and a script of this
    site that posts one without the CSRF token: both refused, the batch still awaits approval."""
    from playwright.sync_api import expect
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    async def attack(request: Any) -> HTMLResponse:
        return HTMLResponse(
            f'<form id="f" method="post" action="{console.url}{batch_path}/approve">'
            '<input name="total" value="KES 525"><button>go</button></form>'
            '<script>document.getElementById("f").submit()</script>'
        )

    with serve_app(Starlette(routes=[Route("/", attack)])) as evil:
        approver.goto(evil)
        approver.wait_for_url(re.compile(re.escape(console.url) + ".*/approve"))
    assert "Not done" in approver.content() and (
        "This form has expired" in approver.content() or "Sign in first" in approver.content()
    )
    status = approver.evaluate(f"""async () => (await fetch("{batch_path}/approve", {{method: "POST",
        headers: {{"Content-Type": "application/x-www-form-urlencoded"}}, body: "total=KES%20525"}})).status""")
    assert status == 403
    approver.goto(console.url + batch_path)
    expect(approver.get_by_text("awaiting approval").first).to_be_visible()
    expect(approver.get_by_text("nobody yet")).to_be_visible()


def test_two_people_walk_the_whole_journey_in_a_browser(browser: Any, console: ConsoleProcess, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    data = tmp_path / "november.csv"
    data.write_text(JOURNEY)
    maker = person(browser, console, "amina", viewport={"width": 390, "height": 844})
    expect(maker.get_by_role("note", name="Environment")).to_contain_text("SANDBOX")
    maker.get_by_label("Payout file").set_input_files(str(data))
    maker.get_by_label("Label").fill("2026-11")
    maker.get_by_role("button", name="Upload").click()
    maker.get_by_role("heading", name="2026-11").wait_for()
    assert maker.evaluate("window.__xss") is None, "a name from the spreadsheet ran as a script"
    expect(maker.get_by_role("cell", name="<script>window.__xss = 1</script>")).to_be_visible()
    expect(maker.get_by_role("cell", name='=HYPERLINK("http://evil.example","pay me")')).to_be_visible()
    assert maker.evaluate("document.documentElement.scrollWidth") <= 390, "the page reads at 390 px"
    maker.get_by_role("button", name="Submit for approval").click()
    expect(maker.get_by_text("awaiting approval").first).to_be_visible()
    expect(maker.get_by_role("button", name="Approve and pay")).to_have_count(0)

    batch_path = re.sub(r"^https?://[^/]+", "", maker.url).split("?")[0]
    approver = person(browser, console, "brian", viewport={"width": 1280, "height": 900})
    forged_approvals_change_nothing(approver, console, batch_path)
    approver.goto(console.url + "/batches")
    approver.get_by_role("link", name="2026-11").click()
    expect(approver.get_by_text("Expected total: KES 525")).to_be_visible()
    assert unlabelled(approver) == [] and unlabelled(maker) == []
    approver.get_by_label("Type the total to confirm").fill("KES 525")
    approver.keyboard.press("Enter")  # the form is sent from the keyboard
    wait_for_status(approver, "5 of 5 rows settled")
    expect(approver.get_by_role("status")).to_contain_text("1 failed: KES 200")
    expect(approver.get_by_role("status")).to_contain_text("1 held (needs a decision): KES 150")
    expect(approver.get_by_text("PETER OKELLO MUSA").first).to_be_visible()

    approver.get_by_role("button", name="Accept row 3 and pay").click()
    wait_for_status(approver, "4 paid: KES 325")

    approver.get_by_role("link", name="Failed", exact=True).click()
    expect(approver.get_by_role("table").filter(has_text="Brian Otieno")).to_be_visible()
    expect(approver.get_by_text("1 rows (failed)")).to_be_visible()
    for link, suffix in (
        ("Download results (XLSX)", ".results.xlsx"),
        ("Download results (CSV)", ".results.csv"),
        ("Download validation report", ".validation.csv"),
    ):
        with approver.expect_download() as download:
            approver.get_by_role("link", name=link).click()
        assert download.value.suggested_filename.startswith("november.") and download.value.suggested_filename.endswith(
            suffix
        )
        saved = tmp_path / download.value.suggested_filename
        download.value.save_as(saved)
        assert saved.stat().st_size > 0
    assert "'=HYPERLINK" in (
        tmp_path / next(p.name for p in tmp_path.iterdir() if p.name.endswith(".results.csv"))
    ).read_text(encoding="utf-8-sig")

    maker.reload()
    maker.get_by_role("button", name="Retry failed rows").click()
    expect(maker.get_by_text("awaiting approval").first).to_be_visible()
    retry_url = maker.url
    approver.goto(retry_url)
    approver.get_by_label("Type the total to confirm").fill("KES 200")
    approver.get_by_role("button", name="Approve and pay").click()
    wait_for_status(approver, "1 of 1 rows settled")
    expect(approver.get_by_role("status")).to_contain_text("1 failed: KES 200")
    approver.get_by_role("link", name="Audit log").click()
    for who, what in (("amina", "submitted for approval"), ("brian", "approved")):
        expect(approver.get_by_role("row").filter(has_text=who).filter(has_text=what).first).to_be_visible()
    approver.get_by_role("button", name="Sign out").click()
    approver.get_by_role("button", name="Sign in").wait_for()
