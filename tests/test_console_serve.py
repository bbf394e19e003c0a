"""`batch-payouts serve`: where it may listen, the server as a real process, and the command line
kept out of the batches (and the built-in sandbox) the console is using."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from click.testing import CliRunner

from batch_payouts.app import serving
from batch_payouts.cli import main
from tests.support import ConsoleProcess

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "payouts.csv"


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, " ".join(result.stderr.split())


def test_a_public_address_needs_tls_or_an_explicit_insecure_http(tmp_path: Path) -> None:
    code, err = invoke("serve", "--sandbox", "--host", "0.0.0.0", "--state", str(tmp_path / "l.db"))
    assert code == 2
    assert (
        "Error: listening on 0.0.0.0 (not this machine alone) needs --tls-cert and --tls-key, or "
        "--insecure-http to serve plain HTTP anyway"
    ) in err
    code, err = invoke("serve", "--sandbox", "--tls-cert", str(tmp_path / "c.pem"), "--state", str(tmp_path / "l.db"))
    assert code == 2 and "Error: --tls-cert and --tls-key go together" in err
    code, err = invoke(
        "serve",
        "--sandbox",
        "--tls-cert",
        str(tmp_path / "c.pem"),
        "--tls-key",
        str(tmp_path / "k"),
        "--state",
        str(tmp_path / "l.db"),
    )
    assert code == 2 and f"error: cannot read {tmp_path / 'c.pem'}: no such file" in err
    code, err = invoke("serve", "--sandbox", "--notify-url", "ftp://x", "--state", str(tmp_path / "l.db"))
    assert code == 2 and "the notification webhook must be an http:// or https:// URL" in err


def test_insecure_http_on_a_public_address_is_warned_about_and_loopback_is_not() -> None:
    warned: list[str] = []
    listen = serving.listen_from("0.0.0.0", 8080, None, None, True, warned.append)
    assert listen.tls is None and warned == [
        "the console is served over plain HTTP on 0.0.0.0: passwords and session cookies cross the network "
        "unencrypted; use --tls-cert and --tls-key"
    ]
    for host in ("127.0.0.1", "::1", "localhost"):
        assert serving.listen_from(host, 8080, None, None, False, warned.append).host == host
    assert len(warned) == 1


def test_serve_over_tls_marks_cookies_secure_and_keeps_the_command_line_out(tmp_path: Path) -> None:
    import ssl
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    with ConsoleProcess(tmp_path / "l.db", "--tls-cert", str(cert), "--tls-key", str(key)) as running:
        assert running.url.startswith("https://127.0.0.1:") and not running.url.endswith(":0")
        page = httpx.get(running.url + "/login", verify=ssl.create_default_context(cafile=str(cert)), timeout=10)
        assert page.status_code == 200 and "SANDBOX" in page.text and "Sign in" in page.text
        cookie = page.headers["set-cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie

        code, err = invoke("run", str(SAMPLE), "--sandbox", "--yes", "--state", str(tmp_path / "l.db"))

        assert (
            code == 2
            and (
                "the built-in sandbox of this ledger is being used by another command; wait for it "
                "to finish, then try again"
            )
            in err
        )
        said = running.output()
        running.close()  # the built-in sandbox's books (with its key) are written when the server stops
    api_key = json.loads((tmp_path / "l.db.sandbox.json").read_text())["api_key"]
    assert api_key and api_key not in said, "the server's log never shows the API key"
