"""Write a PNG of each step of the console's journey into docs/console/ (README, "Console").

    .venv/bin/python docs/console/screenshots.py

Starts `batch-payouts serve --sandbox` on a fresh ledger in a temporary folder, adds a maker and
an approver, and drives Debian's Chromium (/usr/bin/chromium) with Playwright through: sign in,
batches, review, approval, progress, results with a held name and a failure, a retry awaiting
approval, the audit log, and the review at phone width. Nothing real is paid: the sandbox."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

HERE = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
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
FILE = (
    "name,phone,country,amount,currency,reference\n"
    "Amina Njeri,+254712300001,KE,1500,KES,INV-1001\n"
    "Grace Wanjiru,+254700000030,KE,2300,KES,INV-1002\n"
    "Brian Otieno,+254700000010,KE,1800,KES,INV-1003\n"
    "Joseph Kamau,+254712300004,KE,950,KES,INV-1004\n"
)


def serve(state: Path) -> tuple[subprocess.Popen[bytes], str]:
    for name, role in (("amina", "maker"), ("brian", "approver")):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "batch_payouts",
                "users",
                "add",
                name,
                "--role",
                role,
                "--password-stdin",
                "--state",
                str(state),
            ],
            input=(PASSWORD + "\n").encode(),
            check=True,
            capture_output=True,
        )
    log = state.with_name("serve.log")
    proc = subprocess.Popen(
        [sys.executable, "-m", "batch_payouts", "serve", "--sandbox", "--port", "0", "--state", str(state)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if found := re.search(r"Console listening on (http://\S+)", log.read_text()):
            return proc, found.group(1)
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("the console did not start: " + log.read_text())


def sign_in(page: Page, url: str, name: str) -> None:
    page.goto(url + "/login")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Batches").wait_for()


def shot(page: Page, name: str, *, full: bool = False) -> None:
    page.screenshot(path=str(HERE / name), full_page=full)
    print("wrote", HERE / name)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = serve(Path(tmp) / "ledger.sqlite3")
        data = Path(tmp) / "november.csv"
        data.write_text(FILE)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                size = {"width": 1280, "height": 800}
                maker = browser.new_context(viewport=size).new_page()
                maker.goto(url + "/login")
                shot(maker, "01-sign-in.png")
                sign_in(maker, url, "amina")
                maker.get_by_label("Payout file").set_input_files(str(data))
                maker.get_by_label("Label").fill("2026-11")
                shot(maker, "02-batches-upload.png")
                maker.get_by_role("button", name="Upload").click()
                maker.get_by_role("heading", name="2026-11").wait_for()
                shot(maker, "03-review.png", full=True)
                maker.get_by_role("button", name="Submit for approval").click()

                approver = browser.new_context(viewport=size).new_page()
                sign_in(approver, url, "brian")
                shot(approver, "04-batches-awaiting-approval.png")
                approver.get_by_role("link", name="2026-11").click()
                approver.get_by_label("Type the total to confirm").fill("KES 6550")
                shot(approver, "05-approve.png")
                approver.get_by_role("button", name="Approve and pay").click()
                shot(approver, "06-progress.png")
                expect(approver.get_by_role("status")).to_contain_text("Not running: 4 of 4", timeout=60_000)
                shot(approver, "07-results-held-and-failed.png", full=True)
                approver.get_by_role("button", name="Accept row 3 and pay").click()
                expect(approver.get_by_role("status")).to_contain_text("Not running: 4 of 4", timeout=60_000)
                expect(approver.get_by_role("status")).to_contain_text("3 paid", timeout=60_000)
                maker.reload()
                maker.get_by_role("button", name="Retry failed rows").click()
                maker.get_by_text("awaiting approval").first.wait_for()
                shot(maker, "08-retry-awaiting-approval.png")
                approver.goto(re.sub(r"\?.*$", "", approver.url) + "/audit")
                shot(approver, "09-audit-log.png")
                phone = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
                sign_in(phone, url, "brian")
                phone.get_by_role("link", name="2026-11").first.click()
                shot(phone, "10-phone-width.png")
                browser.close()
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
