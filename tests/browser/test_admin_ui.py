"""The admin page in a real browser (Debian's Chromium driven by Playwright) against a live
gateway on SQLite, whose users were made by real chat turns. After each step in the page, the
stored state is read back through the JSON API: the page saying "done" is not enough.

RLPA_ADMIN_UI_SCREENSHOTS=DIR also saves the README's screenshots there
(bench/admin_ui_screenshots.py sets it to docs/).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import openai
import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright

from server.app import create_app
from server.settings import Settings
from tests.fixtures.db import ADMIN_KEY
from tests.fixtures.live import serve
from tests.fixtures.upstreams import ScriptedUpstream, remembering

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")  # Debian's; Playwright never downloads a browser here
DESKTOP: ViewportSize = {"width": 1280, "height": 860}
PHONE: ViewportSize = {"width": 375, "height": 812}
ANA = "team/ana lópez"  # a slash, a space and a non-ASCII letter: every path is URL-encoded
BOB = "bob@example.com"
NO_UPSTREAM = "http://127.0.0.1:9/v1"  # nothing listens: for gateways that never chat
MALLORY = '<b>mallory</b><img src=x onerror="document.title=1">'  # shown as text, never markup


@dataclass
class Gateway:
    url: str
    api: httpx.Client  # the JSON API, with the bootstrap admin key
    admin_key: str  # what the browser signs in with
    admin_key_id: int
    upstream: ScriptedUpstream

    def chat(self, user: str, *facts: str) -> None:
        """Real turns through /v1/chat/completions; the upstream learns each message."""
        self.upstream.script.respond = remembering
        with openai.OpenAI(base_url=f"{self.url}/v1", api_key=ADMIN_KEY, max_retries=0) as client:
            for fact in facts:
                reply = client.chat.completions.create(
                    model="scripted", messages=[{"role": "user", "content": fact}], user=user
                )
                assert reply.choices[0].message.content == "ok"

    def profile(self, user: str) -> httpx.Response:
        return self.api.get(f"/admin/users/{quote(user, safe='')}/profile")

    def traits(self, user: str) -> list[str]:
        response = self.profile(user)
        assert response.status_code == 200, response.text
        return list(response.json()["traits"])

    def summary(self, user: str) -> dict[str, Any]:
        listed = self.api.get("/admin/users", params={"q": user, "limit": 1000}).json()["data"]
        (found,) = [u for u in listed if u["user"] == user]
        return dict(found)


def _sqlite_settings(
    make_settings: Callable[..., Settings], database: Path, upstream: str, **overrides: Any
) -> Settings:
    """A gateway of its own: a fresh SQLite file, the in-process cache, an `openai` upstream."""
    return make_settings(
        database_url=f"sqlite+aiosqlite:///{database}",
        auto_migrate=True,
        redis=False,
        backend="openai",
        upstream_urls=[upstream],
        **overrides,
    )


@pytest.fixture(scope="module")
def gateway(
    make_settings: Callable[..., Settings],
    scripted_pair: tuple[ScriptedUpstream, ScriptedUpstream],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    database = tmp_path_factory.mktemp("admin_ui") / "rlpa.db"
    settings = _sqlite_settings(make_settings, database, scripted_pair[0].url)
    scripted_pair[0].reset()
    with serve(create_app(settings)) as url:
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as api:
            body = {"name": "browser test", "scopes": ["admin"]}
            created = api.post("/admin/keys", json=body)
            assert created.status_code == 201, created.text
            key = created.json()
            found = Gateway(url, api, key["key"], key["id"], scripted_pair[0])
            found.chat(ANA, "vegetarian", "lives in Seattle")
            found.chat(BOB, "plays chess")
            found.chat(MALLORY, "<i>likes</i> markup")
            yield found


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: `apt-get install chromium` (.ci/run installs it)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh tab (empty sessionStorage) that fails the test on a script error or anything
    the Content-Security-Policy blocked."""
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    opened.on(
        "console",
        lambda message: (
            problems.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    yield opened
    context.close()
    assert not problems, problems


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("admin_ui_screenshots")


def _screenshot(page: Page, shots: Path, name: str, *, full_page: bool = False) -> Path:
    path = shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    assert path.stat().st_size > 1000, path
    return path


def _publish(path: Path, name: str) -> None:
    """Copy a screenshot to RLPA_ADMIN_UI_SCREENSHOTS, when set."""
    target = os.environ.get("RLPA_ADMIN_UI_SCREENSHOTS")
    if target:
        Path(target, name).write_bytes(path.read_bytes())


def _sign_in(page: Page, url: str, key: str) -> None:
    page.goto(f"{url}/admin/ui")
    page.get_by_label("Admin API key").fill(key)
    page.get_by_role("button", name="Sign in").click()


def _no_horizontal_scroll(page: Page) -> None:
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], widths


def test_admin_page_manages_a_user_from_search_to_erasure(
    page: Page, gateway: Gateway, shots: Path
) -> None:
    _sign_in(page, gateway.url, gateway.admin_key)
    users = page.locator("#user-list")
    for user in (ANA, BOB, MALLORY):
        expect(users.get_by_role("link", name=user, exact=True)).to_be_visible()
    assert users.locator("b, img").count() == 0  # the id was shown as text
    assert page.title() == "rlpa admin"
    _publish(_screenshot(page, shots, "users-desktop"), "admin-ui-users.png")

    page.get_by_label("Search users").fill("ana")
    page.get_by_role("button", name="Search").click()
    expect(users.get_by_role("link")).to_have_count(1)
    users.get_by_role("link", name=ANA).click()
    expect(page.get_by_role("heading", name=ANA, exact=True)).to_be_focused()
    traits = page.locator("#traits")
    expect(traits).to_contain_text("lives in Seattle")
    assert gateway.traits(ANA) == ["vegetarian", "lives in Seattle"]

    page.get_by_label("New trait").fill("likes jazz")
    page.get_by_role("button", name="Add trait").click()
    expect(traits).to_contain_text("likes jazz")
    assert gateway.traits(ANA) == ["vegetarian", "lives in Seattle", "likes jazz"]

    page.get_by_role("button", name="Remove trait: vegetarian").click()
    expect(traits).not_to_contain_text("vegetarian")
    assert gateway.traits(ANA) == ["lives in Seattle", "likes jazz"]

    page.get_by_role("button", name="Edit trait: likes jazz").click()
    page.get_by_label("Change the trait to").fill("likes bebop")
    page.get_by_role("button", name="Save").click()
    expect(traits).to_contain_text("likes bebop")
    assert sorted(gateway.traits(ANA)) == ["likes bebop", "lives in Seattle"]

    history = gateway.api.get(f"/admin/users/{quote(ANA, safe='')}/profile/history").json()
    by_model = [v for v in history["data"] if v["source"] == "model"]
    by_page = [v for v in history["data"] if v["source"] != "model"]
    assert len(by_model) == 2 and len(by_page) == 4, history  # add, remove, edit (two writes)
    assert {v["actor_key_id"] for v in by_page} == {gateway.admin_key_id}
    made_by = page.locator("#history .version .hint")
    expect(made_by.filter(has_text=f"key #{gateway.admin_key_id}")).to_have_count(4)
    for version in by_model:  # a chat turn's model and request id
        expect(made_by.filter(has_text=f"request {version['request_id']}")).to_contain_text(
            f"model {version['model_name']}"
        )

    opt_out = page.get_by_role("button", name="Opt out (turn personalization off)")
    opt_in = page.get_by_role("button", name="Opt in (turn personalization on)")
    opt_out.click()
    expect(opt_in).to_be_visible()
    expect(page.locator("#user-facts")).to_contain_text("off (opted out)")
    assert gateway.summary(ANA)["personalization"] is False
    opt_in.click()
    expect(opt_out).to_be_visible()
    assert gateway.summary(ANA)["personalization"] is True

    with page.expect_download() as download:
        page.get_by_role("button", name="Download export (JSON)").click()
    exported = json.loads(Path(download.value.path()).read_text())
    assert exported["user"] == ANA and exported["versions"]

    _publish(_screenshot(page, shots, "profile-desktop", full_page=True), "admin-ui-profile.png")
    page.set_viewport_size(PHONE)
    _no_horizontal_scroll(page)
    _screenshot(page, shots, "profile-phone", full_page=True)
    page.set_viewport_size(DESKTOP)

    (version_1,) = [v for v in history["data"] if v["version"] == 1]
    latest = max(v["version"] for v in history["data"])
    page.get_by_role("button", name="Roll back to version 1").click()
    expect(page.locator("#profile-meta")).to_contain_text(f"Version {latest + 1},")
    assert gateway.traits(ANA) == version_1["traits"]

    page.get_by_role("button", name="Erase user…").click()
    confirm = page.get_by_label("Type the user id to confirm")
    expect(confirm).to_be_focused()
    confirm.fill(ANA[:-1])
    expect(page.get_by_role("button", name="Erase for good")).to_be_disabled()
    confirm.fill(ANA)
    page.get_by_role("button", name="Erase for good").click()
    expect(page.locator("#notice")).to_contain_text(f'Erased "{ANA}"')
    expect(users.get_by_role("link", name=ANA)).to_have_count(0)
    assert gateway.profile(ANA).status_code == 404
    assert ANA not in [u["user"] for u in gateway.api.get("/admin/users").json()["data"]]


def test_search_works_from_the_keyboard_alone(page: Page, gateway: Gateway) -> None:
    _sign_in(page, gateway.url, gateway.admin_key)
    expect(page.get_by_role("heading", name="Users")).to_be_focused()
    for _ in range(10):
        if page.evaluate("document.activeElement.id") == "user-search":
            break
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "user-search"
    page.keyboard.type("bob")
    page.keyboard.press("Enter")
    users = page.locator("#user-list")
    expect(users.get_by_role("link")).to_have_count(1)
    expect(users.get_by_role("link", name=BOB)).to_be_visible()
    page.keyboard.press("Tab")  # the search button, then the one result
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=BOB, exact=True)).to_be_focused()
    expect(page.locator("#traits")).to_contain_text("plays chess")


def test_sign_in_explains_refused_keys(page: Page, gateway: Gateway, shots: Path) -> None:
    _sign_in(page, gateway.url, "rlpa-not-a-key-at-all")
    expect(page.get_by_role("alert")).to_contain_text("not accepted (401)")
    chat_key = gateway.api.post("/admin/keys", json={"scopes": ["chat"]}).json()["key"]
    _sign_in(page, gateway.url, chat_key)
    expect(page.get_by_role("alert")).to_contain_text("lacks the admin scope (403)")
    assert page.evaluate("sessionStorage.length") == 0  # a refused key is not kept
    page.set_viewport_size(PHONE)
    _no_horizontal_scroll(page)
    _screenshot(page, shots, "sign-in-phone")


def test_keys_are_created_shown_once_and_revoked(page: Page, gateway: Gateway, shots: Path) -> None:
    _sign_in(page, gateway.url, gateway.admin_key)
    page.get_by_role("link", name="Keys").click()
    page.get_by_label("Name").fill("ci reader")
    page.get_by_label("Bound to user (optional)").fill(BOB)
    page.get_by_label("Expires on (optional, UTC)").fill("2031-01-31")
    page.get_by_label("Tokens per minute (optional)").fill("5000")
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_role("heading", name="Copy the new key now")).to_be_focused()
    expect(page.locator("#new-secret")).to_contain_text("only time the secret is shown")
    secret = page.get_by_label("Secret").input_value()
    assert secret.startswith("rlpa-")
    keys = gateway.api.get("/admin/keys").json()["data"]
    (made,) = [k for k in keys if k["name"] == "ci reader"]
    assert made["user"] == BOB and made["scopes"] == ["chat"] and secret.startswith(made["prefix"])
    assert (made["expires_at"], made["tpm_limit"], made["rpm_limit"]) == (
        "2031-01-31T00:00:00Z",
        5000,
        None,
    )
    expect(page.locator("#key-list")).to_contain_text("5,000 tokens per minute")
    page.set_viewport_size(PHONE)
    _no_horizontal_scroll(page)
    _screenshot(page, shots, "keys-phone", full_page=True)

    page.get_by_role("button", name="I have stored it").click()
    assert page.get_by_label("Secret").input_value() == ""
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Revoke key #{made['id']}").click()
    expect(page.locator("#notice")).to_contain_text(f"Revoked key #{made['id']}")
    keys = gateway.api.get("/admin/keys").json()["data"]
    assert [k["revoked_at"] for k in keys if k["id"] == made["id"]] != [None]


def _usage_cells(report: dict[str, Any], row: dict[str, Any] | None = None) -> list[str]:
    """The count cells the page shows for a report's row (its total by default)."""
    counts = report["total"] if row is None else row
    fields = ("requests", "prompt_tokens", "completion_tokens", "total_tokens")
    return [f"{counts[field]:,}" for field in fields]


def test_usage_tab_shows_the_turns_requests_and_tokens(
    page: Page, gateway: Gateway, shots: Path
) -> None:
    by_day = gateway.api.get("/admin/usage").json()
    assert by_day["total"]["requests"] >= 4  # the fixture's turns, at least
    _sign_in(page, gateway.url, gateway.admin_key)
    page.get_by_role("link", name="Usage").click()
    expect(page.get_by_role("heading", name="Usage")).to_be_focused()
    expect(page.locator("#usage-total td")).to_have_text(_usage_cells(by_day))
    (today,) = by_day["data"]
    expect(page.locator("#usage-rows tr")).to_have_text(
        [today["day"] + "".join(_usage_cells(by_day))]
    )

    # One end user's turns: BOB chatted once in the fixture, and once more now.
    page.get_by_label("Group by").select_option(label="end user")
    page.get_by_label("End user id").fill(BOB)
    page.get_by_role("button", name="Show usage").click()
    before = gateway.api.get("/admin/usage", params={"user": BOB, "group_by": "user"}).json()
    assert before["total"]["requests"] == 1
    expect(page.locator("#usage-total td")).to_have_text(_usage_cells(before))
    gateway.chat(BOB, "likes tea")
    page.get_by_role("button", name="Show usage").click()
    after = gateway.api.get("/admin/usage", params={"user": BOB, "group_by": "user"}).json()
    assert after["total"]["requests"] == 2
    expect(page.locator("#usage-total td")).to_have_text(_usage_cells(after))
    (row,) = after["data"]
    expect(page.locator("#usage-rows td").first).to_have_text(row["user_hash"])
    assert BOB not in page.locator("#usage-table").inner_text()

    # By key: the bootstrap key made every turn.
    page.get_by_label("End user id").fill("")
    page.get_by_label("Group by").select_option(label="key")
    page.get_by_role("button", name="Show usage").click()
    by_key = gateway.api.get("/admin/usage", params={"group_by": "key"}).json()
    (bootstrap,) = by_key["data"]
    expect(page.locator("#usage-rows tr").first).to_contain_text(
        f"#{bootstrap['key_id']} bootstrap"
    )
    expect(page.locator("#usage-total td")).to_have_text(_usage_cells(by_key))
    _screenshot(page, shots, "usage-desktop")
    page.set_viewport_size(PHONE)
    _no_horizontal_scroll(page)
    _screenshot(page, shots, "usage-phone", full_page=True)


def test_audit_tab_shows_who_did_what(page: Page, gateway: Gateway) -> None:
    as_page = {"Authorization": f"Bearer {gateway.admin_key}"}
    made = gateway.api.post("/admin/keys", json={"name": "audited"}, headers=as_page).json()
    (event, *_) = gateway.api.get("/admin/audit").json()["data"]
    assert (event["action"], event["target"]) == ("key.create", str(made["id"]))
    _sign_in(page, gateway.url, gateway.admin_key)
    page.get_by_role("link", name="Audit").click()
    newest = page.locator("#audit-list > li").first
    expect(newest).to_contain_text(f"key.create {made['id']}")
    expect(newest).to_contain_text(f"by key #{gateway.admin_key_id}")


def test_docs_page_renders_the_schema_without_leaving_the_gateway(
    page: Page, gateway: Gateway
) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    response = page.goto(f"{gateway.url}/docs")
    assert response is not None and response.ok
    assert "default-src 'self'" in response.headers["content-security-policy"]
    operations = page.locator(".op summary")
    expect(operations.filter(has_text="/v1/chat/completions").first).to_be_visible()
    expect(operations.filter(has_text="/admin/users/{user}/profile").first).to_be_visible()
    assert requested and all(url.startswith(gateway.url) for url in requested), requested


def test_pages_and_files_have_types_caching_and_a_content_security_policy(
    gateway: Gateway,
) -> None:
    shell = httpx.get(f"{gateway.url}/admin/ui")
    assert shell.headers["content-type"] == "text/html; charset=utf-8"
    assert shell.headers["cache-control"] == "no-cache"
    policy = shell.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "<script>" not in shell.text and " style=" not in shell.text  # nothing inline
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', shell.text)
    assert len(assets) == 2, assets
    for path in assets:
        fingerprinted = httpx.get(f"{gateway.url}{path}")
        assert fingerprinted.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert fingerprinted.headers["x-content-type-options"] == "nosniff"
        plain = httpx.get(f"{gateway.url}{path.split('?')[0]}")
        assert plain.headers["cache-control"] == "no-cache"
    js, css = (httpx.get(f"{gateway.url}/static/{n}") for n in ("admin.js", "admin.css"))
    assert js.headers["content-type"] == "text/javascript; charset=utf-8"
    assert css.headers["content-type"] == "text/css; charset=utf-8"
    assert ".innerHTML" not in js.text and "insertAdjacentHTML" not in js.text
    assert httpx.get(f"{gateway.url}/static/assets.py").status_code == 404


def test_api_tab_reads_the_reference_with_the_key_off_loopback(
    browser: Browser, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Off loopback /docs needs a key a page load cannot send; the signed-in page sends it."""
    settings = _sqlite_settings(make_settings, tmp_path / "rlpa.db", NO_UPSTREAM, host="0.0.0.0")
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    try:
        with serve(create_app(settings)) as url:
            docs = page.goto(f"{url}/docs")
            assert docs is not None and docs.status == 401
            _sign_in(page, url, ADMIN_KEY)
            page.get_by_role("link", name="API").click()
            expect(page.get_by_role("heading", name="API reference")).to_be_focused()
            ops = page.locator("#api-ops .op summary")
            expect(ops.filter(has_text="/admin/users/{user}/export").first).to_be_visible()
    finally:
        context.close()


def test_the_admin_page_can_be_turned_off_and_docs_stay(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = _sqlite_settings(make_settings, tmp_path / "rlpa.db", NO_UPSTREAM, admin_ui=False)
    with serve(create_app(settings)) as url:
        assert httpx.get(f"{url}/admin/ui").status_code == 404
        docs = httpx.get(f"{url}/docs")
        assert docs.status_code == 200
        for path in re.findall(r'(?:src|href)="(/static/[^"]+)"', docs.text):
            assert httpx.get(f"{url}{path}").status_code == 200, path


def test_sign_in_needs_no_key_while_authentication_is_off(
    browser: Browser, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Loopback and no key ever configured or created: the page opens with an empty key."""
    settings = _sqlite_settings(
        make_settings, tmp_path / "rlpa.db", NO_UPSTREAM, admin_api_key=None
    )
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    try:
        with serve(create_app(settings)) as url:
            _sign_in(page, url, "")
            expect(page.get_by_role("heading", name="Users")).to_be_focused()
            expect(page.locator("#who")).to_have_text("No key (authentication off)")
            expect(page.locator("#users-summary")).to_have_text("No users.")
    finally:
        context.close()
