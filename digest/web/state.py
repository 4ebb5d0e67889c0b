"""What every request handler shares: settings, store, page renderer, caches and limits."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import Request

from digest.config import ListSettings, Settings

from .pages import Pages
from .ratelimit import PER_CLIENT, PER_MAILBOX, Limit

if TYPE_CHECKING:
    from digest.store import Store

__all__ = ["WebState", "state_of"]

#: Rendered archive pages kept in memory (an edition's page never changes once stored).
ARCHIVE_CACHE_SIZE = 32


@dataclass
class WebState:
    """The app's shared objects; ``store`` is set at startup when the app opens it."""

    settings: Settings
    pages: Pages
    store: Store | None = None
    # Sign-up limits (buckets in the store, shared by every serve process): see ratelimit.
    per_client: Limit = PER_CLIENT
    per_mailbox: Limit = PER_MAILBOX
    archive_cache: OrderedDict[int, str] = field(default_factory=OrderedDict)
    archive_lock: threading.Lock = field(default_factory=threading.Lock)

    def get_store(self) -> Store:
        """The open store (the app's lifespan opens it when none was given)."""
        if self.store is None:
            from digest.errors import StoreError

            raise StoreError("The web app's store is not open; start the app with its "
                             "lifespan (uvicorn does) or pass a store to create_app.")
        return self.store

    def list_title(self, list_name: str) -> str:
        """The configured title of a list, or its name when it is no longer configured."""
        lst = self.settings.lists.get(list_name)
        return lst.title if lst is not None else list_name

    def language(self, list_name: str | None) -> str:
        """The language of a list's pages (BCP 47); the default one for an unknown list."""
        lst = self.settings.lists.get(list_name) if list_name is not None else None
        return lst.language if lst is not None else self.pages.default_language

    def configured(self, list_name: str) -> ListSettings | None:
        """The list's settings, or None when the configuration has no such list."""
        return self.settings.lists.get(list_name)

    def url(self, path: str) -> str:
        """An absolute public URL for ``path`` (which starts with a slash)."""
        return self.settings.web.base_url.rstrip("/") + path


def state_of(request: Request) -> WebState:
    """The :class:`WebState` of the app serving ``request``."""
    return request.app.state.web  # type: ignore[no-any-return]
