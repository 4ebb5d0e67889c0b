"""The web app's own emails: the double opt-in confirmation and "you are already subscribed".

One message per request, built by :func:`digest.mail.single.single_message` (the headers
written by the same code as every edition message) and sent through the list's relay, or the embedded Maildir server when none is configured, exactly
as ``send --test-to`` does: an address with a non-ASCII local part (``allow_smtputf8``)
goes out with SMTPUTF8 when the relay offers it, and is refused (nothing sent) when not.
"""

from __future__ import annotations

import gettext
import html
import logging
from datetime import UTC, datetime
from email.utils import make_msgid

from digest import i18n, pipeline
from digest.config import ListSettings, Settings
from digest.mail.single import single_message

__all__ = ["already_subscribed_message", "confirmation_message", "send_one"]

log = logging.getLogger("digest.web")


def _translations(settings: Settings, lst: ListSettings) -> gettext.NullTranslations:
    """The list's catalogs: these emails speak the list's language, like its editions."""
    return i18n.load_translations(lst.language, settings.templates_dir)


def _message(settings: Settings, lst: ListSettings, *, email: str, name: str | None,
             subject: str, paragraphs: list[str], link_label: str, link_intro: str,
             link: str) -> tuple[str, str, bytes]:
    """``link_label`` is the HTML button's text; ``link_intro`` the text part's line before
    the address, with its colon (a translator's: French writes " :")."""
    _ = _translations(settings, lst).gettext
    greeting = _("Hello %(name)s,") % {"name": name} if name else _("Hello,")
    footer = [settings.site.name, settings.site.postal_address]
    text = "\n\n".join([greeting, *paragraphs[:1], f"{link_intro}\n{link}",
                        *paragraphs[1:], "\n".join(footer)]) + "\n"
    esc = html.escape
    body = "".join(f'<p style="margin:0 0 16px">{esc(p)}</p>' for p in paragraphs[1:])
    page = (
        f'<!doctype html><html lang="{esc(lst.language)}" '
        f'dir="{i18n.text_direction(lst.language)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(subject)}</title></head>"
        '<body style="margin:0;padding:24px 16px;background:#ffffff;color:#1d1d1f;'
        'font:16px/1.5 -apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif">'
        '<div style="max-width:560px;margin:0 auto">'
        f'<p style="margin:0 0 16px">{esc(greeting)}</p>'
        f'<p style="margin:0 0 16px">{esc(paragraphs[0])}</p>'
        f'<p style="margin:0 0 24px"><a href="{esc(link)}" style="display:inline-block;'
        'background:#0b57a4;color:#ffffff;text-decoration:none;font-weight:bold;'
        f'padding:12px 20px;border-radius:6px">{esc(link_label)}</a></p>'
        f"{body}"
        f'<p style="margin:24px 0 0;color:#5b5b60;font-size:13px">{esc(footer[0])}<br>'
        f"{esc(footer[1])}</p></div></body></html>")
    # The one header code of every message digest writes (76-character encoded lines); a
    # non-ASCII local part is written as UTF-8 and travels with SMTPUTF8 (allow_smtputf8).
    data = single_message(
        from_header=lst.from_header, to=email, to_name=name or None, subject=subject,
        text=text, html=page, message_id=make_msgid("web", domain=settings.site.domain),
        date=datetime.now(UTC), reply_to=lst.reply_to)
    return lst.from_email, email, pipeline.dkim_sign_if_configured(settings, data)


def confirmation_message(settings: Settings, lst: ListSettings, *, email: str,
                         confirm_link: str) -> tuple[str, str, bytes]:
    """``(envelope sender, recipient, bytes)`` asking ``email`` to confirm the subscription,
    in the list's language.

    It carries no text the requester typed (no name in the greeting or the To: header):
    anyone can type anything into the form, and this email goes to someone else's inbox.
    """
    translations = _translations(settings, lst)
    _, ngettext = translations.gettext, translations.ngettext
    days = max(1, round(settings.web.confirm_max_age.total_seconds() / 86400))
    return _message(
        settings, lst, email=email, name=None,
        subject=_("Confirm your subscription to %(title)s") % {"title": lst.title},
        paragraphs=[
            _("Please confirm that you want %(title)s from %(site)s at this address.")
            % {"title": lst.title, "site": settings.site.name},
            ngettext("The link works for %(num)d day. If you did not ask for this, ignore "
                     "this email: you will not hear from us again.",
                     "The link works for %(num)d days. If you did not ask for this, ignore "
                     "this email: you will not hear from us again.", days) % {"num": days},
        ],
        link_label=_("Confirm my subscription"),
        # TRANSLATORS: the line before the confirmation address in the plain-text email.
        link_intro=_("Confirm my subscription:"), link=confirm_link)


def already_subscribed_message(settings: Settings, lst: ListSettings, *, email: str,
                               manage_link: str) -> tuple[str, str, bytes]:
    """``(envelope sender, recipient, bytes)`` telling ``email`` it is already subscribed
    (the web page says the same thing whether or not it was, so nobody can probe addresses).

    Like the confirmation, it greets nobody by name: it answers a stranger's request, and
    the name the store keeps may be one a requester typed."""
    _ = _translations(settings, lst).gettext
    return _message(
        settings, lst, email=email, name=None,
        subject=_("You are already subscribed to %(title)s") % {"title": lst.title},
        paragraphs=[
            _("Someone, probably you, asked to subscribe this address to %(title)s, and it "
              "already gets it. To change your sections or unsubscribe, use your preferences "
              "page.") % {"title": lst.title},
            _("If you did not ask for this, you can ignore this email."),
        ],
        link_label=_("My preferences"),
        # TRANSLATORS: the line before the preferences address in the plain-text email.
        link_intro=_("My preferences:"), link=manage_link)


async def send_one(settings: Settings, lst: ListSettings,
                   message: tuple[str, str, bytes]) -> bool:
    """Send one message through the list's relay (or the embedded server); True when the
    relay accepted it, False when it refused the recipient.

    :raises DeliveryError: when the relay cannot be used (down, refused our credentials).
    """
    accepted = await pipeline.send_single_message(settings, lst, message)
    if not accepted:
        # The relay's reason may quote the address, so only the fact is logged.
        log.warning("the relay refused a web email (list=%s)", lst.name)
    return accepted
