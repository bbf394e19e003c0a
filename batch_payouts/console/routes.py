"""The console's routes: each reads the request, calls one use case of the workspace in a worker
thread, and renders a page or redirects. Errors of ``batch_payouts.errors`` become a page with
their sentence and an HTTP status; nothing else is decided here."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from batch_payouts import errors
from batch_payouts.app.people import Action, Person
from batch_payouts.app.workspace import DRAFT_FILTERS, ROW_FILTERS, Download, Workspace
from batch_payouts.console import progress
from batch_payouts.console.auth import CSRF_FIELD, Sessions, Visit, csrf_ok, new_visit
from batch_payouts.console.pages import HERE, SecurityHeaders, page

T = TypeVar("T")
Handler = Callable[[Request], Awaitable[Response]]
FORM_SLACK = 64 * 1024  # bytes a multipart body may add to the file it carries
EXPIRED = "This form has expired or did not come from this console. Reload the page and try again."


class Console:
    """The handlers, around one workspace and one session signer."""

    def __init__(self, workspace: Workspace, sessions: Sessions) -> None:
        self.ws = workspace
        self.sessions = sessions

    # -- plumbing ----------------------------------------------------------------------------------

    def context(self, request: Request, person: Person | None, visit: Visit | None, **more: Any) -> dict[str, Any]:
        return {
            "banner": self.ws.banner,
            "sandbox": self.ws.is_sandbox,
            "person": person,
            "csrf": visit.csrf if visit else "",
            "Action": Action,
            "path": request.url.path,
            **more,
        }

    async def who(self, request: Request) -> tuple[Person | None, Visit | None]:
        visit = self.sessions.read(request)
        if visit is None or visit.name is None:
            return None, visit
        return await run_in_threadpool(self.ws.person, visit.name), visit

    def signed_in(self, handler: Callable[[Request, Person, Visit], Awaitable[Response]]) -> Handler:
        """Only for a signed-in, active person; the others go to the sign-in page."""

        async def wrapped(request: Request) -> Response:
            person, visit = await self.who(request)
            if person is None or visit is None:
                if request.method == "GET":
                    return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
                return self.refused(request, None, visit, "Sign in first.", 401)
            try:
                return await handler(request, person, visit)
            except errors.BatchPayoutsError as exc:
                return self.refused(request, person, visit, str(exc), status_of(exc))

        return wrapped

    def posting(self, handler: Callable[[Request, Person, Visit, FormData], Awaitable[Response]]) -> Handler:
        """A state-changing form of a signed-in person: refused without the session's CSRF token."""

        async def checked(request: Request, person: Person, visit: Visit) -> Response:
            async with request.form(max_files=0, max_fields=20) as form:
                if not csrf_ok(visit, form.get(CSRF_FIELD)):
                    return self.refused(request, person, visit, EXPIRED, 403)
                return await handler(request, person, visit, form)

        return self.signed_in(checked)

    def refused(
        self, request: Request, person: Person | None, visit: Visit | None, sentence: str, status: int
    ) -> Response:
        return page("refused.html", status, **self.context(request, person, visit, sentence=sentence))

    # -- signing in and out --------------------------------------------------------------------------

    async def login_page(self, request: Request) -> Response:
        person, visit = await self.who(request)
        if person is not None:
            return RedirectResponse("/batches", status_code=303)
        visit = visit or new_visit()
        response = page(
            "login.html",
            **self.context(request, None, visit, next=safe_next(request.query_params.get("next")), sentence=None),
        )
        self.sessions.write(response, visit)
        return response

    async def login(self, request: Request) -> Response:
        visit = self.sessions.read(request)
        async with request.form(max_files=0, max_fields=10) as form:
            fields = {k: str(v) for k, v in form.items()}
        target = safe_next(fields.get("next"))
        if not csrf_ok(visit, fields.get(CSRF_FIELD)):
            return self.refused(request, None, visit, EXPIRED, 403)
        address = request.client.host if request.client else ""
        try:
            person = await run_in_threadpool(
                self.ws.sign_in, fields.get("username", ""), fields.get("password", ""), fields.get("code", ""), address
            )
        except (errors.SignInFailed, errors.SignInThrottled) as exc:
            return page(
                "login.html", status_of(exc), **self.context(request, None, visit, next=target, sentence=str(exc))
            )
        going = RedirectResponse(target, status_code=303)
        self.sessions.write(going, new_visit(person.name))  # a new token once signed in
        return going

    async def logout(self, request: Request, person: Person, visit: Visit, form: FormData) -> Response:
        await run_in_threadpool(self.ws.signed_out, person)
        response = RedirectResponse("/login", status_code=303)
        self.sessions.clear(response)
        return response

    # -- batches -----------------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        return RedirectResponse("/batches", status_code=303)

    async def batches(self, request: Request, person: Person, visit: Visit) -> Response:
        lines = await run_in_threadpool(self.ws.batches, person)
        waiting = await run_in_threadpool(self.ws.drafts, person)
        return page(
            "batches.html",
            **self.context(
                request,
                person,
                visit,
                batches=lines,
                drafts=waiting,
                max_mb=self.ws.options.max_file_bytes // (1024 * 1024),
            ),
        )

    async def upload(self, request: Request, person: Person, visit: Visit) -> Response:
        cap = self.ws.options.max_file_bytes
        length = request.headers.get("content-length")
        if length is None or not length.isdigit():
            return self.refused(request, person, visit, "the upload must say its size (Content-Length)", 411)
        if int(length) > cap + FORM_SLACK:
            raise errors.InputFileError(
                "the uploaded file", f"is larger than the {cap // (1024 * 1024)} MB limit for uploads"
            )
        async with request.form(max_files=1, max_fields=10) as form:
            if not csrf_ok(visit, form.get(CSRF_FIELD)):
                return self.refused(request, person, visit, EXPIRED, 403)
            sent = form.get("file")
            if not isinstance(sent, UploadFile) or not sent.filename:
                return self.refused(request, person, visit, "choose a payout file to upload", 400)
            content = await sent.read(cap + 1)
            name, label = sent.filename, str(form.get("label") or "")
        uploaded = await run_in_threadpool(partial(self.ws.upload, person, name, content, label=label))
        if uploaded.draft is not None:
            return RedirectResponse(f"/drafts/{uploaded.draft}", status_code=303)
        target = f"/batches/{uploaded.batch_id}"
        if uploaded.note:
            target += "?note=" + quote(uploaded.note)
        return RedirectResponse(target, status_code=303)

    async def draft(self, request: Request, person: Person, visit: Visit) -> Response:
        shown, number = request.query_params.get("show", "all"), request.query_params.get("page", "1")
        view = await run_in_threadpool(
            partial(
                self.ws.draft,
                person,
                request.path_params["token"],
                show=shown,
                page=page_number(number),
            )
        )
        return page(
            "draft.html", **self.context(request, person, visit, draft=view, filters=DRAFT_FILTERS, shown=view.show)
        )

    async def remap(self, request: Request, person: Person, visit: Visit, form: FormData) -> Response:
        token = request.path_params["token"]
        mapping = {key.removeprefix("map_"): str(value) for key, value in form.items() if key.startswith("map_")}
        await run_in_threadpool(self.ws.remap, person, token, mapping)
        return RedirectResponse(f"/drafts/{token}", status_code=303)

    async def submit_draft(self, request: Request, person: Person, visit: Visit, form: FormData) -> Response:
        batch_id = await run_in_threadpool(self.ws.submit_draft, person, request.path_params["token"])
        return RedirectResponse(f"/batches/{batch_id}", status_code=303)

    async def batch(self, request: Request, person: Person, visit: Visit) -> Response:
        batch_id = request.path_params["batch_id"]
        shown = request.query_params.get("show", "all")
        number = request.query_params.get("page", "1")
        view = await run_in_threadpool(partial(self.ws.batch, person, batch_id, show=shown, page=page_number(number)))
        return page(
            "batch.html",
            **self.context(
                request,
                person,
                visit,
                batch=view,
                rows=view.rows,
                shown=view.show,
                filters=ROW_FILTERS,
                note=request.query_params.get("note"),
            ),
        )

    async def submit(self, request: Request, person: Person, visit: Visit, form: FormData) -> Response:
        batch_id = request.path_params["batch_id"]
        await run_in_threadpool(self.ws.submit, person, batch_id)
        return RedirectResponse(f"/batches/{batch_id}", status_code=303)

    async def approve(self, request: Request, person: Person, visit: Visit, form: FormData) -> Response:
        batch_id = request.path_params["batch_id"]
        await run_in_threadpool(self.ws.approve, person, batch_id, str(form.get("total") or ""))
        return RedirectResponse(f"/batches/{batch_id}", status_code=303)

    async def accept(self, request: Request, person: Person, visit: Visit, form: FormData) -> Response:
        batch_id = request.path_params["batch_id"]
        row = str(form.get("row") or "")
        if not row.isdigit():
            return self.refused(request, person, visit, "which row? no row number was sent", 400)
        await run_in_threadpool(self.ws.accept_held, person, batch_id, int(row))
        return RedirectResponse(f"/batches/{batch_id}", status_code=303)

    async def retry(self, request: Request, person: Person, visit: Visit, form: FormData) -> Response:
        child = await run_in_threadpool(self.ws.retry, person, request.path_params["batch_id"])
        return RedirectResponse(f"/batches/{child}", status_code=303)

    async def events(self, request: Request, person: Person, visit: Visit) -> Response:
        batch_id = request.path_params["batch_id"]
        await run_in_threadpool(self.ws.progress, person, batch_id)  # refused here, not inside the stream
        return progress.stream(partial(self.ws.progress, person, batch_id))

    async def audit(self, request: Request, person: Person, visit: Visit) -> Response:
        batch_id = request.path_params["batch_id"]
        lines = await run_in_threadpool(self.ws.audit, person, batch_id)
        return page("audit.html", **self.context(request, person, visit, batch_id=batch_id, lines=lines))

    async def download(self, request: Request, person: Person, visit: Visit) -> Response:
        batch_id, what = request.path_params["batch_id"], request.path_params["what"]
        file: Download
        if what == "results.csv":
            file = await run_in_threadpool(self.ws.results_file, person, batch_id, ".csv")
        elif what == "results.xlsx":
            file = await run_in_threadpool(self.ws.results_file, person, batch_id, ".xlsx")
        elif what == "validation.csv":
            file = await run_in_threadpool(self.ws.validation_report, person, batch_id)
        else:
            return self.refused(request, person, visit, "no such download", 404)
        return Response(
            file.content,
            media_type=file.media_type,
            headers={"content-disposition": f'attachment; filename="{file.filename}"'},
        )

    # -- people ----------------------------------------------------------------------------------------

    async def people(self, request: Request, person: Person, visit: Visit) -> Response:
        lines = await run_in_threadpool(self.ws.people, person)
        return page("people.html", **self.context(request, person, visit, people=lines, added=None))

    async def add_person(self, request: Request, person: Person, visit: Visit, form: FormData) -> Response:
        added = await run_in_threadpool(
            partial(
                self.ws.add_person,
                person,
                str(form.get("name") or ""),
                str(form.get("role") or ""),
                str(form.get("password") or ""),
                totp=form.get("totp") == "on",
            )
        )
        lines = await run_in_threadpool(self.ws.people, person)
        return page("people.html", **self.context(request, person, visit, people=lines, added=added))

    async def disable_person(self, request: Request, person: Person, visit: Visit, form: FormData) -> Response:
        await run_in_threadpool(self.ws.disable_person, person, str(form.get("name") or ""))
        return RedirectResponse("/people", status_code=303)


def page_number(text: str) -> int:
    """The page a query asks for: a plain number of up to nine digits, else the first."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else 1


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of this console only."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/batches"
    return target


def status_of(exc: errors.BatchPayoutsError) -> int:
    """The HTTP status of an error a person caused or met."""
    if isinstance(exc, errors.SignInThrottled):
        return 429
    if isinstance(exc, errors.SignInFailed):
        return 401
    if isinstance(exc, errors.NotAllowed | errors.SamePerson):
        return 403
    if isinstance(exc, errors.BatchNotFound | errors.UnknownUser | errors.UnknownDraft):
        return 404
    if isinstance(exc, errors.WrongStage | errors.BatchLocked | errors.UserExists | errors.WrongEnvironment):
        return 409
    if isinstance(exc, errors.InputFileError) and "limit for uploads" in exc.cause:
        return 413
    if isinstance(
        exc,
        errors.InputFileError
        | errors.UsageProblem
        | errors.PlanRefused
        | errors.TotalNotConfirmed
        | errors.NotHeld
        | errors.ConfigError,
    ):
        return 400
    return 502 if isinstance(exc, errors.ApiError | errors.NoAnswer) else 500


def build_app(
    workspace: Workspace,
    *,
    secure: bool = False,
    session_seconds: float = 8 * 3600.0,
    clock: Callable[[], float] = time.time,
) -> Any:
    """The console as an ASGI app; ``secure``: served over TLS (cookies marked Secure); sessions
    last ``session_seconds`` by ``clock`` (epoch seconds)."""
    c = Console(workspace, Sessions(secure=secure, max_age=session_seconds, clock=clock))
    routes = [
        Route("/", c.home),
        Route("/login", c.login_page, methods=["GET"]),
        Route("/login", c.login, methods=["POST"]),
        Route("/logout", c.posting(c.logout), methods=["POST"]),
        Route("/batches", c.signed_in(c.batches)),
        Route("/upload", c.signed_in(c.upload), methods=["POST"]),
        Route("/drafts/{token}", c.signed_in(c.draft)),
        Route("/drafts/{token}/mapping", c.posting(c.remap), methods=["POST"]),
        Route("/drafts/{token}/submit", c.posting(c.submit_draft), methods=["POST"]),
        Route("/batches/{batch_id}", c.signed_in(c.batch)),
        Route("/batches/{batch_id}/submit", c.posting(c.submit), methods=["POST"]),
        Route("/batches/{batch_id}/approve", c.posting(c.approve), methods=["POST"]),
        Route("/batches/{batch_id}/accept", c.posting(c.accept), methods=["POST"]),
        Route("/batches/{batch_id}/retry", c.posting(c.retry), methods=["POST"]),
        Route("/batches/{batch_id}/events", c.signed_in(c.events)),
        Route("/batches/{batch_id}/audit", c.signed_in(c.audit)),
        Route("/batches/{batch_id}/download/{what}", c.signed_in(c.download)),
        Route("/people", c.signed_in(c.people)),
        Route("/people", c.posting(c.add_person), methods=["POST"]),
        Route("/people/disable", c.posting(c.disable_person), methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.console = c
    return SecurityHeaders(app)
