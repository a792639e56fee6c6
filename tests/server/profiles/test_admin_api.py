"""The admin API over HTTP, on PostgreSQL + Redis and on SQLite + the in-process LRU."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import httpx


def new_user(tag: str = "u") -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}"


def url(user: str, tail: str = "") -> str:
    return f"/admin/users/{quote(user, safe='')}{tail}"


async def test_put_then_get_profile_returns_the_new_version(
    admin_client: httpx.AsyncClient,
) -> None:
    user = new_user()
    put = await admin_client.put(url(user, "/profile"), json={"traits": ["likes tea", "vegan"]})
    assert put.status_code == 200, put.text
    got = await admin_client.get(url(user, "/profile"))
    assert got.status_code == 200
    body = got.json()
    assert body["user"] == user
    assert body["version"] == 1
    assert body["traits"] == ["likes tea", "vegan"]
    assert body["source"] == "admin"
    assert "T" in body["updated_at"]


async def test_unknown_user_profile_is_404_in_openai_shape(admin_client: httpx.AsyncClient) -> None:
    response = await admin_client.get(url(new_user(), "/profile"))
    assert response.status_code == 404
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}


async def test_user_names_with_slashes_spaces_and_unicode_round_trip(
    admin_client: httpx.AsyncClient,
) -> None:
    user = f"team/alice smith ünï {uuid.uuid4().hex[:6]}/profile"
    assert (
        await admin_client.put(url(user, "/profile"), json={"traits": ["x"]})
    ).status_code == 200
    body = (await admin_client.get(url(user, "/profile"))).json()
    assert body["user"] == user
    history = (await admin_client.get(url(user, "/profile/history"))).json()
    assert history["data"][0]["traits"] == ["x"]


async def test_history_lists_versions_newest_first_with_added_and_removed(
    admin_client: httpx.AsyncClient,
) -> None:
    user = new_user()
    for traits in (["a", "b"], ["b", "c"], ["c"]):
        await admin_client.put(url(user, "/profile"), json={"traits": traits})
    data = (await admin_client.get(url(user, "/profile/history"))).json()["data"]
    assert [v["version"] for v in data] == [3, 2, 1]
    assert data[0]["added"] == [] and data[0]["removed"] == ["b"]
    assert data[1]["added"] == ["c"] and data[1]["removed"] == ["a"]
    assert data[2]["added"] == ["a", "b"] and data[2]["removed"] == []
    assert all(v["source"] == "admin" and v["created_at"] for v in data)


async def test_rollback_creates_a_new_version_with_old_traits(
    admin_client: httpx.AsyncClient,
) -> None:
    user = new_user()
    await admin_client.put(url(user, "/profile"), json={"traits": ["first"]})
    await admin_client.put(url(user, "/profile"), json={"traits": ["second"]})
    response = await admin_client.post(url(user, "/profile/rollback"), json={"version": 1})
    assert response.status_code == 200
    assert response.json()["version"] == 3
    assert (await admin_client.get(url(user, "/profile"))).json()["traits"] == ["first"]


async def test_rollback_to_unknown_version_is_rejected_and_stores_nothing(
    admin_client: httpx.AsyncClient,
) -> None:
    user = new_user()
    await admin_client.put(url(user, "/profile"), json={"traits": ["only"]})
    response = await admin_client.post(url(user, "/profile/rollback"), json={"version": 7})
    assert response.status_code == 404
    assert response.json()["error"]["param"] == "version"
    assert (await admin_client.get(url(user, "/profile"))).json()["version"] == 1


async def test_bad_traits_are_rejected_and_store_nothing(admin_client: httpx.AsyncClient) -> None:
    user = new_user()
    await admin_client.put(url(user, "/profile"), json={"traits": ["keep me"]})
    for bad in (["x" * 201], ["bell\x07"], ["line\nbreak"], [f"t{i}" for i in range(65)]):
        response = await admin_client.put(url(user, "/profile"), json={"traits": bad})
        assert response.status_code == 400, bad
        assert response.json()["error"]["type"] == "invalid_request_error"
    profile = (await admin_client.get(url(user, "/profile"))).json()
    assert (profile["version"], profile["traits"]) == (1, ["keep me"])


async def test_malformed_json_is_400_in_openai_shape(admin_client: httpx.AsyncClient) -> None:
    response = await admin_client.put(
        url(new_user(), "/profile"),
        content=b'{"traits": [',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]["message"]


async def test_body_over_the_limit_is_413(admin_client: httpx.AsyncClient) -> None:
    huge = {"traits": ["x" * 100] * 20_000}
    response = await admin_client.put(url(new_user(), "/profile"), json=huge)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


async def test_user_string_over_256_characters_is_rejected(admin_client: httpx.AsyncClient) -> None:
    response = await admin_client.put(url("x" * 257, "/profile"), json={"traits": ["a"]})
    assert response.status_code == 400


async def test_list_users_pages_with_a_cursor_and_filters(admin_client: httpx.AsyncClient) -> None:
    tag = f"list{uuid.uuid4().hex[:6]}"
    for i in range(5):
        await admin_client.put(url(f"{tag}-{i}", "/profile"), json={"traits": ["a"] * 1 + [str(i)]})
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, "q": tag} | ({"cursor": cursor} if cursor else {})
        page = (await admin_client.get("/admin/users", params=params)).json()
        seen += [row["user"] for row in page["data"]]
        assert all(row["traits_count"] == 2 and row["personalization"] for row in page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"{tag}-{i}" for i in range(5)]


async def test_erase_removes_user_and_versions_and_leaves_others(
    admin_client: httpx.AsyncClient,
) -> None:
    gone, kept = new_user("gone"), new_user("kept")
    for user in (gone, kept):
        await admin_client.put(url(user, "/profile"), json={"traits": ["t"]})
        await admin_client.get(url(user, "/profile"))  # fill the cache
    assert (await admin_client.delete(url(gone))).status_code == 204
    assert (await admin_client.get(url(gone, "/profile"))).status_code == 404
    assert (await admin_client.get(url(gone, "/export"))).status_code == 404
    assert (await admin_client.delete(url(gone))).status_code == 404
    assert (await admin_client.get(url(kept, "/profile"))).json()["traits"] == ["t"]


async def test_export_contains_the_user_and_every_version(admin_client: httpx.AsyncClient) -> None:
    user = new_user()
    await admin_client.put(url(user, "/profile"), json={"traits": ["a"]})
    await admin_client.put(url(user, "/profile"), json={"traits": ["a", "b"]})
    body = (await admin_client.get(url(user, "/export"))).json()
    assert body["user"] == user and body["tenant"] == "default"
    assert [v["traits"] for v in body["versions"]] == [["a"], ["a", "b"]]


async def test_personalization_off_is_reported_and_can_be_turned_back_on(
    admin_client: httpx.AsyncClient,
) -> None:
    user = new_user()
    off = await admin_client.patch(url(user), json={"personalization": False})
    assert off.status_code == 200 and off.json()["personalization"] is False
    listed = (await admin_client.get("/admin/users", params={"q": user})).json()["data"]
    assert listed[0]["personalization"] is False
    on = await admin_client.patch(url(user), json={"personalization": True})
    assert on.json()["personalization"] is True


async def test_admin_routes_are_in_the_openapi_schema(admin_client: httpx.AsyncClient) -> None:
    paths = (await admin_client.get("/openapi.json")).json()["paths"]
    for path in (
        "/admin/users",
        "/admin/users/{user}/profile",
        "/admin/users/{user}/profile/history",
        "/admin/users/{user}/profile/rollback",
        "/admin/users/{user}/export",
        "/admin/users/{user}",
        "/admin/keys",
    ):
        assert path in paths, path
