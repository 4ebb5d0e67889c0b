"""The desk's door: sign-in, sessions, CSRF, Origin, rate limits, redirects, headers, errors.

In-process through httpx's ASGI transport against a real SQLite store (the rate-limit
buckets are also tested on PostgreSQL in test_store_desk.py).
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from desk_support import (
    CHEAP,
    DESK,
    ORIGIN,
    PASSWORD,
    add_editor,
    csrf_of,
    desk_client,
    desk_settings,
    sign_in,
)
from render_editions import seed_edition
from starlette.responses import Response as StarletteResponse

from digest.config import Settings
from digest.passwords import hash_password
from digest.store import Store, open_store
from digest.web.desk.sessions import SESSION_COOKIE, SessionCodec


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return desk_settings(tmp_path)


@pytest.fixture
def store(settings: Settings):
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    with open_store(settings.database_url) as opened:
        add_editor(opened)
        yield opened


@pytest.fixture
async def client(settings: Settings, store: Store):
    async with desk_client(settings, store) as c:
        yield c


@pytest.fixture
async def signed(client: httpx.AsyncClient) -> httpx.AsyncClient:
    response = await sign_in(client)
    assert response.status_code == 303, response.text
    return client


def no_traceback(response: httpx.Response) -> None:
    assert "Traceback" not in response.text and 'File "' not in response.text


# --------------------------------------------------------------------------- no session


PAGES = ["/", "/editions/1", "/editions/1/frame?view=phone&scheme=dark", "/editions/1/text",
         "/editions/1/eml", "/editions/1/report", "/subscribers", "/subscribers/1",
         "/no/such/page"]


async def test_every_page_but_sign_in_answers_303_to_it_without_a_session(client):
    for path in PAGES:
        response = await client.get(DESK + path)
        assert response.status_code == 303, path
        location = response.headers["location"]
        assert location.startswith("https://news.example.org/digest/desk/login")
        if path != "/":
            assert "next=" in location
        assert "set-cookie" not in response.headers


async def test_a_form_posted_without_a_session_goes_to_sign_in_and_changes_nothing(
        client, store):
    edition_id = store.record_edition(seed_edition()).id
    for path in ("/logout", f"/editions/{edition_id}/test", f"/editions/{edition_id}/variant",
                 f"/editions/{edition_id}/approve", "/lists/daily/draft", "/subscribers"):
        response = await client.post(DESK + path, data={
            "csrf": "x", "addresses": "a@example.org", "confirmed": "yes"})
        assert response.status_code == 303, path
        assert "/digest/desk/login" in response.headers["location"]
    assert store.get_editor("ana") is not None
    assert store.get_edition(edition_id).status == "draft"
    assert len(store.list_editions("daily")) == 1


async def test_desk_without_slash_goes_to_the_overview(client):
    response = await client.get("/digest/desk")
    assert response.status_code == 308
    assert response.headers["location"] == "https://news.example.org/digest/desk/"


# --------------------------------------------------------------------------- sign in


async def test_sign_in_sets_a_strict_secure_expiring_session_cookie(client, store):
    response = await sign_in(client)
    assert response.status_code == 303
    assert response.headers["location"] == "https://news.example.org/digest/desk/"
    cookies = response.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith(f"{SESSION_COOKIE}="))
    attributes = {part.strip().lower() for part in session.split(";")[1:]}
    assert {"httponly", "secure", "samesite=strict", "path=/digest/desk",
            "max-age=43200"} <= attributes
    # The sign-in form's nonce cookie is used once.
    assert any(c.startswith("digest_desk_login=") and "Max-Age=0" in c for c in cookies)
    overview = await client.get(f"{DESK}/")
    assert overview.status_code == 200
    assert "ana" in overview.text and "Sign out" in overview.text
    assert store.get_editor("ana").last_sign_in_at is not None


async def test_names_are_case_insensitive(client):
    assert (await sign_in(client, name="ANA")).status_code == 303


async def test_a_wrong_name_or_password_gets_one_sentence_and_no_session(client):
    for name, password in (("ana", "wrong password here"), ("nobody", PASSWORD),
                           ("", PASSWORD), ("ana", "x" * 2000)):
        response = await sign_in(client, name=name, password=password)
        assert response.status_code == 400, name
        assert "That name and password do not match an editor." in response.text
        assert not any(c.startswith(f"{SESSION_COOKIE}=")
                       for c in response.headers.get_list("set-cookie"))
        assert (await client.get(f"{DESK}/")).status_code == 303
        no_traceback(response)


async def test_the_sign_in_form_needs_its_own_nonce(client):
    form = await client.get(f"{DESK}/login")
    nonce = csrf_of(form.text)
    fields = {"username": "ana", "password": PASSWORD}
    for fake in ("", "x" + nonce[1:], nonce + "x"):
        response = await client.post(f"{DESK}/login", data={**fields, "csrf": fake})
        assert response.status_code == 403, fake
        assert "expired" in response.text
    client.cookies.clear()  # the nonce without its cookie (a page elsewhere cannot set it)
    response = await client.post(f"{DESK}/login", data={**fields, "csrf": nonce})
    assert response.status_code == 403


async def test_sign_in_page_of_a_signed_in_editor_goes_to_the_desk(signed):
    response = await signed.get(f"{DESK}/login?next=/digest/desk/subscribers")
    assert response.status_code == 303
    assert response.headers["location"] == "https://news.example.org/digest/desk/subscribers"


NEXT_URLS = [
    ("/digest/desk/editions/1?scheme=dark",
     "https://news.example.org/digest/desk/editions/1?scheme=dark"),
    ("/digest/desk/subscribers", "https://news.example.org/digest/desk/subscribers"),
    ("https://evil.example/digest/desk/", "https://news.example.org/digest/desk/"),
    ("//evil.example/digest/desk/", "https://news.example.org/digest/desk/"),
    ("/\\evil.example", "https://news.example.org/digest/desk/"),
    ("/digest/desk/\\\\evil.example", "https://news.example.org/digest/desk/"),
    ("/digest/desk//evil.example", "https://news.example.org/digest/desk/"),
    ("/digest/desk/../../elsewhere", "https://news.example.org/digest/desk/"),
    ("/digest/desk/%2e%2e/unsubscribe/x", "https://news.example.org/digest/desk/"),
    ("/digest/deskx/", "https://news.example.org/digest/desk/"),
    ("/digest/unsubscribe/token", "https://news.example.org/digest/desk/"),
    ("javascript:alert(1)", "https://news.example.org/digest/desk/"),
    ("/digest/desk/\r\nSet-Cookie: x=1", "https://news.example.org/digest/desk/"),
]


async def test_next_leads_only_to_a_desk_page(client):
    for next_url, expected in NEXT_URLS:
        client.cookies.clear()
        response = await sign_in(client, next_url=next_url)
        assert response.status_code == 303
        assert response.headers["location"] == expected, next_url


async def test_next_survives_the_detour_through_sign_in(client):
    first = await client.get(f"{DESK}/editions/1/report?x=1")
    location = first.headers["location"]
    assert location.endswith("next=/digest/desk/editions/1/report%3Fx%3D1")
    form = await client.get(location)
    assert 'name="next" value="/digest/desk/editions/1/report?x=1"' in form.text
    response = await client.post(f"{DESK}/login", data={
        "username": "ana", "password": PASSWORD, "csrf": csrf_of(form.text),
        "next": "/digest/desk/editions/1/report?x=1"})
    assert response.headers["location"] == ("https://news.example.org/digest/desk/editions/1/"
                                            "report?x=1")


# --------------------------------------------------------------------------- sessions


async def test_sign_out_ends_the_session_and_replaying_the_cookie_fails(signed):
    cookie = signed.cookies.get(SESSION_COOKIE, path="/digest/desk")
    page = await signed.get(f"{DESK}/")
    response = await signed.post(f"{DESK}/logout", data={"csrf": csrf_of(page.text)})
    assert response.status_code == 303
    assert response.headers["location"] == "https://news.example.org/digest/desk/login"
    assert any(c.startswith(f"{SESSION_COOKIE}=") and "Max-Age=0" in c
               for c in response.headers.get_list("set-cookie"))
    signed.cookies.set(SESSION_COOKIE, cookie, domain="news.example.org", path="/digest/desk")
    assert (await signed.get(f"{DESK}/")).status_code == 303


async def test_a_new_password_or_removal_ends_open_sessions(signed, store):
    assert (await signed.get(f"{DESK}/")).status_code == 200
    store.set_editor_password("ana", hash_password("another long password", CHEAP))
    assert (await signed.get(f"{DESK}/")).status_code == 303
    assert (await sign_in(signed, password="another long password")).status_code == 303
    assert (await signed.get(f"{DESK}/")).status_code == 200
    store.remove_editor("ana")
    assert (await signed.get(f"{DESK}/")).status_code == 303


async def test_a_tampered_or_foreign_cookie_is_no_session(signed, settings):
    good = signed.cookies.get(SESSION_COOKIE, path="/digest/desk")
    payload, _, signature = good.partition(".")
    other = SessionCodec(("someone-elses-key-000000000000",), path="/digest/desk", secure=True)
    forged = StarletteResponse()
    other.set(forged, other.new("ana", signed.desk.store.get_editor("ana").session_key))
    forged_cookie = forged.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    for bad in (good[:-2] + "xx", payload + "." + signature[::-1], forged_cookie, "garbage",
                "x" * 5000):
        signed.cookies.clear()
        signed.cookies.set(SESSION_COOKIE, bad, domain="news.example.org", path="/digest/desk")
        assert (await signed.get(f"{DESK}/")).status_code == 303, bad


async def test_a_session_expires_after_twelve_hours(signed, settings, monkeypatch):
    import itsdangerous.timed

    page = await signed.get(f"{DESK}/")
    assert page.status_code == 200
    store_key = signed.desk.store.get_editor("ana").session_key  # type: ignore[attr-defined]
    codec: SessionCodec = signed.desk.sessions  # type: ignore[attr-defined]
    real = itsdangerous.timed.time.time
    monkeypatch.setattr(itsdangerous.timed.time, "time",
                        lambda: real() - timedelta(hours=12, minutes=1).total_seconds())
    old = StarletteResponse()
    codec.set(old, codec.new("ana", store_key))
    monkeypatch.undo()
    value = old.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    signed.cookies.clear()
    signed.cookies.set(SESSION_COOKIE, value, domain="news.example.org", path="/digest/desk")
    assert (await signed.get(f"{DESK}/")).status_code == 303


# --------------------------------------------------------------------------- Origin and CSRF


CROSS_SITE = [
    {"Origin": "https://evil.example"},
    {"Origin": "http://news.example.org"},  # another scheme is another origin
    {"Origin": "https://news.example.org:8443"},
    {"Origin": "null"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site", "Origin": "https://other.news.example.org"},
    {},
]


async def test_a_cross_site_or_headerless_post_is_refused(signed, store):
    page = await signed.get(f"{DESK}/")
    token = csrf_of(page.text)
    for headers in CROSS_SITE:
        signed.headers.pop("Origin", None)
        response = await signed.post(f"{DESK}/logout", data={"csrf": token}, headers=headers)
        assert response.status_code == 403, headers
        # The public pages' guard refuses another site first; the desk's own also
        # refuses a post without any browser header.
        assert "This form can only be sent from" in response.text
        no_traceback(response)
        signed.headers["Origin"] = ORIGIN
        assert (await signed.get(f"{DESK}/")).status_code == 200  # still signed in


async def test_sec_fetch_site_same_origin_is_enough(signed):
    page = await signed.get(f"{DESK}/")
    signed.headers.pop("Origin", None)
    response = await signed.post(f"{DESK}/logout", data={"csrf": csrf_of(page.text)},
                                 headers={"Sec-Fetch-Site": "same-origin"})
    assert response.status_code == 303


async def test_a_cross_site_sign_in_is_refused(client):
    form = await client.get(f"{DESK}/login")
    response = await client.post(f"{DESK}/login", headers={"Origin": "https://evil.example"},
                                 data={"username": "ana", "password": PASSWORD,
                                       "csrf": csrf_of(form.text)})
    assert response.status_code == 403


async def test_a_desk_form_needs_the_session_csrf_token(signed):
    for token in (None, "", "wrong", "x" * 32):
        data = {"addresses": "ed@example.org"} | ({"csrf": token} if token is not None else {})
        response = await signed.post(f"{DESK}/editions/1/test", data=data)
        assert response.status_code == 403, token
        assert "expired or did not come from the desk" in response.text
        response = await signed.post(f"{DESK}/logout", data=data)
        assert response.status_code == 403
        assert (await signed.get(f"{DESK}/")).status_code == 200


async def test_a_multipart_form_is_not_a_desk_form(signed):
    page = await signed.get(f"{DESK}/")
    response = await signed.post(f"{DESK}/logout",
                                 files={"csrf": (None, csrf_of(page.text))})
    assert response.status_code == 403


async def test_the_token_of_another_session_does_not_work(settings, store, signed):
    page = await signed.get(f"{DESK}/")
    mine = csrf_of(page.text)
    async with desk_client(settings, store) as other:
        await sign_in(other)
        assert (await other.post(f"{DESK}/logout", data={"csrf": mine})).status_code == 403


# --------------------------------------------------------------------------- rate limits


async def test_failed_sign_ins_are_limited_per_account(client, settings, store):
    for _ in range(5):
        assert (await sign_in(client, password="not the password at all")).status_code == 400
    response = await sign_in(client)  # even the right password waits now
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0
    assert "Too many failed sign-ins" in response.text
    # Another account from the same client is not blocked by this one's limit.
    add_editor(store, "ben")
    assert (await sign_in(client, name="ben")).status_code == 303
    # The limit is in the store: a restarted app (or another serve process) keeps it.
    async with desk_client(settings, store, client=("198.51.100.9", 1)) as restarted:
        assert (await sign_in(restarted)).status_code == 429


async def test_failed_sign_ins_are_limited_per_client_network(settings, store):
    async with desk_client(settings, store, client=("2001:db8:1:2::10", 1)) as c:
        for i in range(20):
            assert (await sign_in(c, name=f"guess{i}", password="wrong")).status_code == 400
        assert (await sign_in(c)).status_code == 429
    # Another address in the same IPv6 /64 is the same client network.
    async with desk_client(settings, store, client=("2001:db8:1:2::99", 1)) as c:
        assert (await sign_in(c)).status_code == 429
    async with desk_client(settings, store, client=("2001:db8:1:3::10", 1)) as c:
        assert (await sign_in(c)).status_code == 303


async def test_successful_sign_ins_are_not_counted(client):
    for _ in range(8):
        client.cookies.clear()
        assert (await sign_in(client)).status_code == 303


# --------------------------------------------------------------------------- headers, errors


async def test_desk_pages_allow_no_inline_script_and_no_framing(signed):
    response = await signed.get(f"{DESK}/")
    policy = response.headers["content-security-policy"]
    script = re.search(r"script-src ([^;]*)", policy).group(1)
    assert script.strip() == "'self'"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["cache-control"] == "no-store"
    assert "<script src=\"https://news.example.org/digest/desk/static/desk.js?v=" in response.text
    assert not re.search(r"<script(?![^>]*\bsrc=)", response.text)  # no inline script
    assert " style=" not in response.text and "<style" not in response.text


async def test_static_files_are_served_from_the_desk_itself(client):
    css = await client.get(f"{DESK}/static/desk.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "immutable" in css.headers["cache-control"]
    js = await client.get(f"{DESK}/static/desk.js")
    assert js.headers["content-type"].startswith("text/javascript")
    assert "http" not in js.text.replace("https://", "")  # fetches only its own page
    assert (await client.get(f"{DESK}/static/..%2Fbase.html")).status_code in (303, 404)
    assert (await client.get(f"{DESK}/static/nothing.css")).status_code == 404


async def test_a_failure_inside_a_page_shows_no_traceback(signed, store, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("secret internals /etc/passwd")

    monkeypatch.setattr(type(store), "count_members", boom)
    response = await signed.get(f"{DESK}/")
    assert response.status_code == 500
    assert "Something went wrong" in response.text
    assert "secret internals" not in response.text
    no_traceback(response)
    assert "script-src 'self'" in response.headers["content-security-policy"]


async def test_an_unknown_edition_is_a_404_page(signed):
    response = await signed.get(f"{DESK}/editions/424242")
    assert response.status_code == 404
    assert "No such edition" in response.text
    assert (await signed.get(f"{DESK}/editions/abc")).status_code == 404


async def test_public_pages_keep_their_own_policy(client, store):
    record = store.record_edition(seed_edition())
    assert record.id
    response = await client.get("/digest/")
    assert response.headers["content-security-policy"].startswith("default-src 'none'; "
                                                                  "style-src 'unsafe-inline'")
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
