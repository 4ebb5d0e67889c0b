"""Where the templates digest ships with live, the fallback for a newsroom's own folder.

A source checkout (and an editable install) has them in the top-level ``templates/``, the
newsroom's editable copy; a wheel (``pip install .``) has them inside the package, in its
own ``templates`` folder, where ``setup.py``'s ``build_py`` copies them. Every template loader
looks in the configured ``digest.templates_dir`` first and here second, so a newsroom's
folder needs only the templates it changes, and an installed digest renders with none.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SHIPPED_TEMPLATES", "template_folders"]

_PACKAGED = Path(__file__).resolve().parent / "templates"
_CHECKOUT = Path(__file__).resolve().parent.parent / "templates"

#: The shipped templates: the package's copy in a wheel, else the checkout's folder.
SHIPPED_TEMPLATES = _PACKAGED if (_PACKAGED / "email").is_dir() else _CHECKOUT


def template_folders(configured: Path, sub: str = "") -> list[Path]:
    """The folders a loader searches for ``sub`` (e.g. ``"web"``): the configured one's,
    then the shipped one's, each only when it exists and once."""
    out: list[Path] = []
    for root in (Path(configured), SHIPPED_TEMPLATES):
        folder = (root / sub) if sub else root
        if folder.is_dir() and folder.resolve() not in [f.resolve() for f in out]:
            out.append(folder)
    return out
