"""What the desk tests share: a project, a store with an editor, a signed-in ASGI client."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from argon2 import PasswordHasher, profiles
from test_web import BASE, KEY, write_config

from digest.config import Settings, load_settings
from digest.passwords import hash_password
from digest.store import Store
from digest.web import create_app

__all__ = ["CHEAP", "DESK", "ORIGIN", "PASSWORD", "csrf_of", "desk_client", "desk_settings",
           "sign_in"]

#: Cheap Argon2 parameters for tests (the real ones take ~0.1-2 s a hash on purpose).
CHEAP = PasswordHasher.from_parameters(profiles.CHEAPEST)
PASSWORD = "correct horse battery staple"
ORIGIN = "https://news.example.org"
DESK = "/digest/desk"


def desk_settings(folder: Path, extra: str = "") -> Settings:
    """Settings of a project like the repository's, in ``folder``."""
    return load_settings(write_config(folder, extra), env={"DIGEST_SECRET_KEY": KEY})


def add_editor(store: Store, name: str = "ana", password: str = PASSWORD) -> None:
    store.add_editor(name, hash_password(password, CHEAP))


def desk_client(settings: Settings, store: Store, *, client: tuple[str, int] = (
        "203.0.113.7", 50000)) -> httpx.AsyncClient:
    """An httpx client on the app (no network), cookies kept, as a browser on the desk's
    origin: POSTs carry ``Origin`` unless a test sets another."""
    app = create_app(settings, store)
    desk = app.state.desk
    desk.hasher = CHEAP
    transport = httpx.ASGITransport(app=app, client=client)
    c = httpx.AsyncClient(transport=transport, base_url=ORIGIN, follow_redirects=False,
                          headers={"Origin": ORIGIN})
    c.desk = desk  # type: ignore[attr-defined]
    return c


def csrf_of(html: str) -> str:
    """The CSRF token in a page's forms."""
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, name: str = "ana",
                  password: str = PASSWORD, next_url: str = "") -> httpx.Response:
    """Open the sign-in form and post it; the response of the POST."""
    form = await client.get(f"{DESK}/login")
    assert form.status_code == 200, form.text
    return await client.post(f"{DESK}/login", data={
        "username": name, "password": password, "csrf": csrf_of(form.text), "next": next_url})


assert BASE.startswith(ORIGIN)
