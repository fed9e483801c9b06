"""The release-manager page in real headless Chromium (Debian's package, driven by Playwright)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from tests.integration.conftest import Server, token_of

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'gatekeeper.db'}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.fail("Chromium is not installed: apt-get install chromium (.ci/run does this)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield launched
        launched.close()


def test_a_release_manager_logs_in_sees_a_deferred_release_approves_it_and_sees_it_approved(
    server: Server, browser: Browser, tmp_path: Path
) -> None:
    with server.client("hook") as client:
        waiting = client.post("/v1/gate", json={"target": "argocd:odoo-wms", "revision": "4c1d2e3f5a6b"}).json()
    assert waiting["verdict"] == "defer"
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    page.goto(server.url + "/")
    page.fill("#token", token_of("manager"))
    page.click("#login-form button[type=submit]")
    row = page.locator(f"#waiting-rows tr[data-release='{waiting['release_id']}']")
    expect(row).to_contain_text("approval_missing")
    expect(row).to_contain_text("deferred")
    expect(page.locator("#calendar")).to_contain_text("dispatch_cutoff")
    assert "token" not in page.url
    screenshot = Path(os.environ.get("GATEKEEPER_SCREENSHOT", tmp_path / "page.png"))
    page.screenshot(path=str(screenshot), full_page=True)
    row.locator(".why").fill("checked the image digest")
    row.locator("button.approve").click()
    expect(page.locator("#notice")).to_contain_text(f"Release #{waiting['release_id']} is now approved")
    expect(row).to_have_count(0)  # no longer waiting: among those approved, to roll back if need be
    expect(page.locator(f"#live-rows tr[data-release='{waiting['release_id']}']")).to_contain_text("approved")
    with server.client("viewer") as client:
        assert client.get(f"/v1/releases/{waiting['release_id']}").json()["status"] == "approved"
    page.close()


def test_the_page_shows_an_honest_error_when_the_api_refuses(server: Server, browser: Browser) -> None:
    with server.client("hook") as client:
        waiting = client.post("/v1/gate", json={"target": "argocd:odoo-wms", "revision": "9f8e7d6c5b4a"}).json()
    page = browser.new_page()
    page.goto(server.url + "/")
    page.fill("#token", token_of("viewer"))
    page.click("#login-form button[type=submit]")
    row = page.locator(f"tr[data-release='{waiting['release_id']}']")
    row.locator("button.approve").click()
    expect(page.locator("#error")).to_contain_text("403")
    expect(page.locator("#error")).to_contain_text("lacks the role")
    page.click("#logout")
    page.fill("#token", "not-a-token")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#error")).to_contain_text("401")
    page.close()


def test_the_page_and_the_cli_show_an_action_that_keeps_failing(
    config_tree: tuple[Path, Path], tokens_file: Path, tmp_path: Path, browser: Browser
) -> None:
    """GitHub is unreachable: the commit status a push's decision enqueued fails, is retried, and
    the page and `gatekeeper actions list` say so with the error."""
    import subprocess
    import sys

    from tests.integration import payloads as p
    from tests.integration.conftest import MutableClock, eventually, free_port, make_settings, start_server
    from tests.integration.test_gate_api import OPEN
    from tests.integration.test_webhooks import GITHUB_SECRET

    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings = make_settings(
        f"sqlite:///{tmp_path / 'gk.db'}", *config_tree, tokens_file,
        GITHUB_SECRET=GITHUB_SECRET, GITHUB_API_TOKEN="ghs_x", GITHUB_API_URL=dead, SCHEDULER_INTERVAL=0.1,
    )
    server = start_server(settings, MutableClock(OPEN))
    try:
        body = p.encode(p.github_push())
        with server.client() as client:
            pushed = client.post("/webhooks/github", content=body, headers=p.github_headers(GITHUB_SECRET, "push", body))
        assert pushed.status_code == 200, pushed.text

        def failing() -> list[dict[str, object]]:
            with server.client("viewer") as client:
                return [a for a in client.get("/v1/actions").json()["items"] if a["last_error"]]

        eventually(lambda: len(failing()) == 1)
        page = browser.new_page()
        page.goto(server.url + "/")
        page.fill("#token", token_of("manager"))
        page.click("#login-form button[type=submit]")
        expect(page.locator("#actions")).to_contain_text("commit_status")
        expect(page.locator("#actions")).to_contain_text("failed")  # the error says the POST failed
        page.close()
        listed = subprocess.run(
            [str(Path(sys.executable).with_name("gatekeeper")), "actions", "list", "--server", server.url],
            env={**os.environ, "GATEKEEPER_TOKEN": token_of("viewer")}, capture_output=True, text=True, timeout=60,
        )
        assert listed.returncode == 0, listed.stderr
        assert "commit_status" in listed.stdout and "pending" in listed.stdout
        assert "ConnectError" in listed.stdout or "failed" in listed.stdout
    finally:
        server.stop()


def test_the_api_docs_render_from_the_server_alone_listing_every_operation(
    server: Server, browser: Browser, tmp_path: Path
) -> None:
    """/docs is Swagger UI served with its own assets: every request that leaves for another host
    is refused, and the page still lists the operations."""
    with server.client() as client:
        operations = sum(len(methods) for methods in client.get("/openapi.json").json()["paths"].values())
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    elsewhere: list[str] = []

    def offline(route: Route) -> None:
        if route.request.url.startswith(server.url + "/"):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort("internetdisconnected")

    page.route("**/*", offline)
    page.goto(server.url + "/docs")
    expect(page.locator(".opblock")).to_have_count(operations)
    expect(page.locator(".opblock-summary-path").filter(has_text="/v1/gate")).to_have_count(1)
    expect(page.locator(".information-container")).to_contain_text("gatekeeper")
    expect(page.locator(".auth-wrapper .authorize")).to_be_visible()  # the bearer scheme
    screenshot = Path(os.environ.get("GATEKEEPER_DOCS_SCREENSHOT", tmp_path / "docs.png"))
    page.screenshot(path=str(screenshot), full_page=True)
    assert elsewhere == []
    page.close()


def test_the_page_warns_of_a_stale_calendar_feed(tokens_file: Path, tmp_path: Path, browser: Browser) -> None:
    """A published calendar nobody can fetch closes its targets (calendar_stale): the page says so
    above everything else, with the URL redacted and the last error."""
    from tests.integration.conftest import MutableClock, eventually, free_port, make_settings, start_server

    dead = f"http://127.0.0.1:{free_port()}/owa/calendar/id@acme.example/s3cr3t/calendar.ics"  # nothing listens
    policies, calendars = tmp_path / "policies", tmp_path / "calendars"
    policies.mkdir()
    calendars.mkdir()
    (policies / "finance.yaml").write_text(
        "apiVersion: gatekeeper/v1\nkind: ReleasePolicy\nmetadata: {name: finance}\n"
        f'spec:\n  targets: ["argocd:finance*"]\n  calendar:\n    deny:\n      - {{ics: "{dead}", code: month_end_close}}\n'
    )
    settings = make_settings(
        f"sqlite:///{tmp_path / 'gk.db'}", policies, calendars, tokens_file,
        CALENDAR_CACHE_DIR=tmp_path / "cache", CALENDAR_REFRESH_INTERVAL=0.2, CALENDAR_FETCH_RETRIES=0,
    )
    server = start_server(settings, MutableClock())
    try:
        with server.client() as client:
            eventually(lambda: client.get("/readyz").json()["calendars"][0]["last_error"] is not None)
        page = browser.new_page()
        page.goto(server.url + "/")
        page.fill("#token", token_of("manager"))
        page.click("#login-form button[type=submit]")
        warning = page.locator("#feeds")
        expect(warning).to_contain_text("has never been fetched")
        expect(warning).to_contain_text("calendar_stale")
        expect(warning).to_contain_text("month_end_close")
        expect(warning).to_contain_text("ConnectError")
        assert "s3cr3t" not in warning.inner_text()
        page.close()
    finally:
        server.stop()


# --- the on-call page: who is logged in, stop the line, break-glass, rollback ------------------------

DEV_TOKENS = Path(__file__).resolve().parents[2] / "dev" / "tokens.yaml"  # the tokens of `make run`


@pytest.fixture
def dev_server(config_tree: tuple[Path, Path], tmp_path: Path) -> Iterator[Server]:
    """A server whose tokens are dev/tokens.yaml, as `make run` serves them (README)."""
    from tests.integration.conftest import MutableClock, make_settings, start_server

    running = start_server(make_settings(f"sqlite:///{tmp_path / 'gk.db'}", *config_tree, DEV_TOKENS), MutableClock())
    yield running
    running.stop()


def dev_api(server: Server, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def log_in(browser: Browser, server: Server, token: str) -> Page:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(server.url + "/")
    page.fill("#token", token)
    page.click("#login-form button[type=submit]")
    return page


def test_the_on_call_page_stops_the_line_breaks_glass_rolls_back_and_lifts_the_freeze(
    dev_server: Server, browser: Browser, tmp_path: Path
) -> None:
    """The dev break-glass token of dev/tokens.yaml logs in, sees who it is, and uses every
    control; each lands in the API as the routes say. A viewer sees none of the controls."""
    from tests.integration.test_gate_api import CUTOFF

    dev_server.clock.set(CUTOFF)  # dispatch cut-off: the release waits
    with dev_api(dev_server, "dev-hook-token") as hook:
        waiting = hook.post("/v1/gate", json={"target": "argocd:odoo-prod", "revision": "d1e2f3a4b5c6"}).json()
        other = hook.post("/v1/gate", json={"target": "argocd:odoo-wms", "revision": "a9b8c7d6e5f4"}).json()
    assert waiting["verdict"] == other["verdict"] == "defer"
    release = waiting["release_id"]
    page = log_in(browser, dev_server, "dev-breakglass-token")
    expect(page.locator("#identity")).to_contain_text("Logged in as carol-oncall")
    expect(page.locator("#identity")).to_contain_text("break-glass")
    row = page.locator(f"#waiting-rows tr[data-release='{release}']")
    expect(row).to_contain_text("dispatch_cutoff")

    page.fill("#freeze-targets", "argocd:odoo-prod*")
    page.fill("#freeze-reason", "carrier API down")
    page.click("#freeze-form button[type=submit]")
    expect(page.locator("#notice")).to_contain_text("is active on argocd:odoo-prod*")
    frozen = page.locator("#freezes-rows tr[data-freeze]")
    expect(frozen).to_have_count(1)
    expect(frozen).to_contain_text("carrier API down")
    expect(frozen).to_contain_text("carol-oncall")
    expect(row).to_contain_text("adhoc_freeze")  # decided again under the freeze
    with dev_api(dev_server, "dev-viewer-token") as viewer:
        status = viewer.get("/v1/status", params={"target": "argocd:odoo-prod"}).json()
    assert status["closed"] and "adhoc_freeze" in [r["code"] for r in status["reasons"]]

    row.locator(".why").fill("invoice run blocked, CFO call")
    row.locator("button.break-glass").click()
    expect(page.locator("#notice")).to_contain_text(f"Release #{release} is now approved (break-glass")
    live = page.locator(f"#live-rows tr[data-release='{release}']")
    expect(live).to_contain_text("approved")
    expect(live).to_contain_text("carol-oncall (break-glass)")
    expect(page.locator(f"#waiting-rows tr[data-release='{other['release_id']}'] button.break-glass")).to_be_visible()
    screenshot = Path(os.environ.get("GATEKEEPER_ONCALL_SCREENSHOT", tmp_path / "on-call.png"))
    page.screenshot(path=str(screenshot), full_page=True)

    live.locator(".why").fill("500s after the sync")
    live.locator("button.rollback").click()
    expect(page.locator("#notice")).to_contain_text(f"Release #{release} is now")
    with dev_api(dev_server, "dev-viewer-token") as viewer:
        detail = viewer.get(f"/v1/releases/{release}").json()
    assert detail["decisions"][-1]["verdict"] == "rollback"
    assert "rollback requested by carol-oncall: 500s after the sync" in detail["decisions"][-1]["reasons"][0]["message"]

    frozen.locator(".lift-why").fill("carrier is back")
    frozen.locator("button.lift").click()
    expect(page.locator("#notice")).to_contain_text("Freeze #")
    expect(page.locator("#notice")).to_contain_text("is lifted")
    expect(page.locator("#freezes-empty")).to_be_visible()
    with dev_api(dev_server, "dev-viewer-token") as viewer:
        assert viewer.get("/v1/freezes").json()["items"] == []
        kinds = [record["kind"] for record in viewer.get("/v1/audit").json()["items"]]
    assert {"freeze", "break_glass", "rollback", "freeze_lift"} <= set(kinds)
    page.close()

    page = log_in(browser, dev_server, "dev-viewer-token")
    expect(page.locator("#identity")).to_contain_text("Logged in as dev-viewer")
    expect(page.locator("#live-rows")).to_contain_text(f"#{release}")
    expect(page.locator("#freezes")).to_be_visible()
    expect(page.locator("#stop-line")).to_be_hidden()
    expect(page.locator("button.rollback, button.break-glass, button.lift")).to_have_count(0)
    page.close()


def test_after_the_first_of_two_approvals_the_page_says_still_deferred_not_success(
    dev_server: Server, browser: Browser
) -> None:
    with dev_api(dev_server, "dev-hook-token") as hook:
        waiting = hook.post("/v1/gate", json={"target": "argocd:odoo-finance", "revision": "f1a2b3c4d5e6"}).json()
    release = waiting["release_id"]
    page = log_in(browser, dev_server, "dev-alice-token")
    row = page.locator(f"#waiting-rows tr[data-release='{release}']")
    expect(row.locator("td.ships")).to_contain_text("0 of 2 approvals (release-manager)")  # when it ships
    row.locator("button.approve").click()
    expect(page.locator("#pending")).to_have_text(f"Release #{release}: 1 of 2 approvals, still deferred.")
    expect(row.locator("td.ships")).to_contain_text("1 of 2 approvals (release-manager)")
    expect(page.locator("#notice")).to_be_hidden()
    expect(row).to_contain_text("alice")
    expect(row.locator("button.break-glass")).to_have_count(0)  # alice holds no break-glass
    page.click("#logout")
    page.fill("#token", "dev-bob-token")
    page.click("#login-form button[type=submit]")
    page.locator(f"#waiting-rows tr[data-release='{release}'] button.approve").click()
    expect(page.locator("#notice")).to_contain_text(f"Release #{release} is now approved")
    expect(page.locator("#pending")).to_be_hidden()
    page.close()


# --- each release's actions, and the server's clock ---------------------------------------------------


def test_a_viewer_sees_each_releases_actions_a_done_sync_and_a_failing_rollback_standing_out(
    config_tree: tuple[Path, Path], tokens_file: Path, tmp_path: Path, browser: Browser
) -> None:
    """odoo-prod-eu is deferred by the cut-off; when the window opens the scheduler syncs it
    (argocd_sync done) and Argo CD reports it applied. A release manager asks for a rollback that
    cannot be carried out (Argo CD's history was pruned: no earlier revision): it is retried with
    its error.
    The viewer's page shows both on the release's row, the failing one marked as such."""
    from tests.integration import payloads as p
    from tests.integration.conftest import MutableClock, eventually, make_settings, start_server
    from tests.integration.fake_argocd import ARGOCD_TOKEN, start_fake_argocd
    from tests.integration.test_gate_api import CUTOFF
    from tests.integration.test_webhooks import ARGOCD_SECRET

    revision = "b" * 40
    argocd = start_fake_argocd()
    argocd.add("odoo-prod-eu", "a" * 40)
    settings = make_settings(
        f"sqlite:///{tmp_path / 'gk.db'}", *config_tree, tokens_file, ARGOCD_TOKEN=ARGOCD_SECRET,
        ARGOCD_SERVER=argocd.url, ARGOCD_API_TOKEN=ARGOCD_TOKEN, SCHEDULER_INTERVAL=0.1,
    )
    server = start_server(settings, MutableClock(CUTOFF))
    try:
        with server.client("hook") as hook:
            answer = hook.post("/v1/gate", json={"target": "argocd:odoo-prod-eu", "revision": revision}).json()
        assert answer["verdict"] == "defer"
        release = answer["release_id"]

        def actions() -> dict[str, dict[str, object]]:
            with server.client("viewer") as viewer:
                items = viewer.get("/v1/actions", params={"release": release}).json()["items"]
            return {str(a["kind"]): a for a in items}

        server.clock.set(CUTOFF + timedelta(hours=3))
        eventually(lambda: actions().get("argocd_sync", {}).get("status") == "done")
        body = p.encode(p.argocd_event("sync-succeeded", revision=revision, app="odoo-prod-eu"))
        applied = httpx.post(f"{server.url}/webhooks/argocd", content=body, headers=p.argocd_headers(ARGOCD_SECRET))
        assert applied.status_code == 200 and applied.json()["decision"]["status"] == "applied", applied.text
        with argocd.lock:  # its history pruned (revisionHistoryLimit): nothing earlier to roll back to
            argocd.apps["odoo-prod-eu"]["status"]["history"] = []
        with server.client("manager") as manager:
            asked = manager.post(f"/v1/releases/{release}/rollback", json={"reason": "checkout is broken"})
        assert asked.status_code == 200, asked.text
        eventually(lambda: bool(actions().get("rollback", {}).get("last_error")))

        page = log_in(browser, server, token_of("viewer"))
        row = page.locator(f"#live-rows tr[data-release='{release}']")
        expect(row).to_contain_text("applied")
        sync = row.locator(".action[data-kind='argocd_sync']")
        expect(sync).to_contain_text("done")
        expect(sync).to_contain_text("1 attempt")
        expect(sync).not_to_have_class(re.compile(r"\baction-failing\b"))
        failing = row.locator(".action-failing")
        expect(failing).to_have_count(1)
        expect(failing).to_have_attribute("data-kind", "rollback")
        expect(failing).to_contain_text("pending")
        expect(failing).to_contain_text("next attempt")
        expect(failing).to_contain_text("no earlier revision to roll back to")
        expect(failing).to_have_attribute("role", "alert")
        assert failing.evaluate("e => getComputedStyle(e).color") == "rgb(179, 38, 30)"  # var(--bad)
        expect(page.locator("#actions")).to_contain_text("rollback")  # and among the actions failing
        screenshot = Path(os.environ.get("GATEKEEPER_ACTIONS_SCREENSHOT", tmp_path / "actions.png"))
        page.screenshot(path=str(screenshot), full_page=True)
        page.close()
    finally:
        server.stop()
        argocd.stop()


def test_the_fortnight_calendar_is_reckoned_from_the_servers_clock_not_the_browsers(
    server: Server, browser: Browser
) -> None:
    """The browser's clock is years off; the page asks for the windows from the server's now
    (GET /v1/me) and shows today's cut-off, clipped at that instant."""
    from datetime import UTC, datetime

    from tests.integration.test_gate_api import CUTOFF

    server.clock.set(CUTOFF)  # 14:30 Berlin, inside the dispatch cut-off until 16:00
    with server.client("hook") as client:
        assert client.post("/v1/gate", json={"target": "argocd:odoo-wms", "revision": "5e6f7a8b9c0d"}).status_code == 200
    page = browser.new_page()
    page.clock.set_fixed_time(datetime(2031, 6, 1, 12, 0, tzinfo=UTC))
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url) if "/v1/windows" in request.url else None)
    page.goto(server.url + "/")
    assert page.evaluate("new Date().getUTCFullYear()") == 2031
    page.fill("#token", token_of("viewer"))
    page.click("#login-form button[type=submit]")
    calendar = page.locator("#calendar")
    expect(calendar).to_contain_text("(2026-11-24T13:30:00Z)")  # the cut-off, from the server's now
    expect(calendar).to_contain_text("(2026-11-24T15:00:00Z)")
    expect(page.locator("#calendar-from")).to_have_text("from 2026-11-24T13:30:00Z (the server's clock)")
    expect(calendar).not_to_contain_text("2031")
    assert asked and all("from=2026-11-24T13:30:00Z" in url and "to=2026-12-08T13:30:00Z" in url for url in asked)
    page.close()
