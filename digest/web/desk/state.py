"""What every desk handler shares: the web app's state, sessions, templates, limits, caches."""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from starlette.requests import Request

from digest.passwords import DEFAULT_HASHER

from ..ratelimit import SIGN_IN_PER_ACCOUNT, SIGN_IN_PER_CLIENT, Limit
from ..state import WebState
from .pages import DeskPages
from .sessions import SessionCodec

if TYPE_CHECKING:
    from digest.store import Editor, Store

__all__ = ["DESK_PATH", "DeskState", "SignedIn", "desk_of", "signed_in"]

#: Where the desk lives under ``web.base_url``.
DESK_PATH = "/desk"
#: Rendered editions kept in memory (a stored edition never changes).
PROOF_CACHE_SIZE = 8


@dataclass(frozen=True, slots=True)
class SignedIn:
    """The editor a request comes from, and their session."""

    editor: Editor
    csrf: str


@dataclass
class DeskState:
    """The desk's shared objects (one per app)."""

    web: WebState
    pages: DeskPages
    sessions: SessionCodec
    hasher: PasswordHasher = DEFAULT_HASHER
    # Failed sign-ins per account name and per client network (see ..ratelimit).
    per_account: Limit = SIGN_IN_PER_ACCOUNT
    per_client: Limit = SIGN_IN_PER_CLIENT
    proofs: OrderedDict[int, Any] = field(default_factory=OrderedDict)
    # Deliveries started by "send now" on the desk, running in the server's event loop.
    sends: set[asyncio.Task[None]] = field(default_factory=set)
    proofs_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def create(cls, web: WebState) -> DeskState:
        """The desk state for the web app ``web``."""
        base = web.settings.web.base_url
        parts = urlsplit(base)
        path = parts.path.rstrip("/") + DESK_PATH
        return cls(web=web, pages=DeskPages(web.settings, desk_url=base + DESK_PATH),
                   sessions=SessionCodec(web.settings.web.secret_keys, path=path,
                                         secure=parts.scheme == "https"))

    @property
    def store(self) -> Store:
        """The web app's open store."""
        return self.web.get_store()

    @property
    def public_path(self) -> str:
        """The desk's path as browsers see it (``/digest/desk``)."""
        return self.sessions.path

    def url(self, path: str = "/") -> str:
        """The absolute URL of desk page ``path`` (``/editions/3``), from ``web.base_url``."""
        return self.web.url(DESK_PATH + path)


def desk_of(request: Request) -> DeskState:
    """The :class:`DeskState` of the desk app serving ``request``."""
    return request.app.state.desk  # type: ignore[no-any-return]


def signed_in(request: Request) -> SignedIn:
    """The editor of a request the guard let through (every desk page but the sign-in)."""
    return request.scope["digest.desk"]  # type: ignore[no-any-return]
