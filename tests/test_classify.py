"""Classification over every row of the reliability research's fault map (section 2.2).

The exceptions here are the ones aiosmtplib 5.1.3 raises for each fault (verified against
real servers in tests/test_pool.py); this module pins the decision taken for each.
"""

from __future__ import annotations

import ssl

import aiosmtplib
import pytest

from digest.deliver.classify import Kind, Phase, classify_exception, classify_reply, redact

C, M, R, D = Phase.CONNECT, Phase.MAIL, Phase.RCPT, Phase.DATA


def _ssl_cause() -> aiosmtplib.SMTPConnectError:
    err = aiosmtplib.SMTPConnectError("Error connecting to 127.0.0.1 on port 1")
    err.__cause__ = ssl.SSLError("wrong version number")
    return err


def refused(code: int, text: str) -> aiosmtplib.SMTPRecipientsRefused:
    return aiosmtplib.SMTPRecipientsRefused(
        [aiosmtplib.SMTPRecipientRefused(code, text, "x@example.com")])


# (row of the fault map, exception, phase, kind, reconnect, ambiguous)
ROWS = [
    ("port closed", aiosmtplib.SMTPConnectError("Connect call failed"), C, Kind.RELAY,
     True, False),
    ("unresolvable host", aiosmtplib.SMTPConnectError("Name or service not known"), C,
     Kind.RELAY, True, False),
    ("tarpit, no greeting", aiosmtplib.SMTPConnectTimeoutError("Timed out waiting"), C,
     Kind.RELAY, True, False),
    ("greeting 421", aiosmtplib.SMTPConnectResponseError(421, "try later"), C, Kind.RELAY,
     True, False),
    ("greeting 554", aiosmtplib.SMTPConnectResponseError(554, "go away"), C, Kind.RELAY,
     True, False),
    ("garbage greeting", aiosmtplib.SMTPResponseException(-1, "Malformed SMTP response"), C,
     Kind.RELAY, True, False),
    ("421 to EHLO", aiosmtplib.SMTPHeloError(421, "closing"), C, Kind.RELAY, True, False),
    ("451 at MAIL", aiosmtplib.SMTPSenderRefused(451, "4.3.0 later", "s@x"), M, Kind.RETRY,
     False, False),
    ("421 at MAIL", aiosmtplib.SMTPSenderRefused(421, "4.7.0 closing", "s@x"), M, Kind.RETRY,
     True, False),
    ("552 at MAIL (SIZE)", aiosmtplib.SMTPSenderRefused(552, "5.3.4 too big", "s@x"), M,
     Kind.FAIL, False, False),
    ("550 at MAIL (sender refused)", aiosmtplib.SMTPSenderRefused(550, "5.7.1 no", "s@x"),
     M, Kind.SENDER, False, False),
    ("only recipient 550", refused(550, "5.1.1 user unknown"), R, Kind.SUPPRESS, False,
     False),
    ("only recipient 551", refused(551, "5.1.6 user not local"), R, Kind.SUPPRESS, False,
     False),
    ("only recipient 553", refused(553, "5.1.3 bad address syntax"), R, Kind.SUPPRESS,
     False, False),
    ("550 without enhanced code", refused(550, "no such user"), R, Kind.SUPPRESS, False,
     False),
    ("550 without enhanced code, about us", refused(550, "blocked as spam"), R, Kind.FAIL,
     False, False),
    ("550 with the code after the text", refused(550, "Recipient rejected (5.1.1 unknown)"),
     R, Kind.SUPPRESS, False, False),
    ("550 5.1.1 worded about us", refused(550, "5.1.1 rejected by spam filter"), R,
     Kind.FAIL, False, False),
    ("550 5.1.0 other address status: not hard", refused(550, "5.1.0 address rejected"), R,
     Kind.FAIL, False, False),
    ("550 5.1.10 null MX (RFC 7505)", refused(550, "5.1.10 domain accepts no mail"), R,
     Kind.SUPPRESS, False, False),
    ("550 5.0.0 then 5.1.1: the most specific", refused(550, "5.0.0 <x@example.com>... "
     "5.1.1 user unknown"), R, Kind.SUPPRESS, False, False),
    ("550 5.7.1 policy", refused(550, "5.7.1 refused by policy"), R, Kind.FAIL, False,
     False),
    ("550 5.2.1 mailbox disabled", refused(550, "5.2.1 disabled"), R, Kind.SUPPRESS, False,
     False),
    ("550 5.1.8 at RCPT: the sender's domain", refused(550, "5.1.8 sender domain rejected"),
     R, Kind.FAIL, False, False),
    ("553 5.1.7 at RCPT: the sender's address", refused(553, "5.1.7 bad sender syntax"), R,
     Kind.FAIL, False, False),
    ("only recipient 450 (greylist)", refused(450, "4.2.0 greylisted"), R, Kind.RETRY,
     False, False),
    ("only recipient 452", refused(452, "4.5.3 too many recipients"), R, Kind.RETRY, False,
     False),
    ("552 at RCPT is temporary", refused(552, "5.2.2 mailbox full"), R, Kind.RETRY, False,
     False),
    ("421 + close at RCPT, single", refused(421, "4.4.2 closing"), R, Kind.RETRY, True,
     False),
    ("421 + close at RCPT, more follow", aiosmtplib.SMTPServerDisconnected("not connected"),
     R, Kind.RETRY, True, False),
    ("451 at end of DATA", aiosmtplib.SMTPDataError(451, "4.3.0 later"), D, Kind.RETRY,
     False, False),
    ("552 at end of DATA", aiosmtplib.SMTPDataError(552, "5.3.4 too big"), D, Kind.FAIL,
     False, False),
    ("554 at end of DATA", aiosmtplib.SMTPDataError(554, "5.7.1 content rejected"), D,
     Kind.FAIL, False, False),
    ("421 at end of DATA", aiosmtplib.SMTPDataError(421, "4.4.2 closing"), D, Kind.RETRY,
     True, False),
    ("550 5.1.1 at end of DATA (LMTP-style)", aiosmtplib.SMTPDataError(550, "5.1.1 unknown"),
     D, Kind.SUPPRESS, False, False),
    ("close after 354, before the message was sent (payload not written)",
     aiosmtplib.SMTPServerDisconnected("Connection lost"), D, Kind.RETRY, True, False),
    ("close after the final dot (RFC 1047)",
     aiosmtplib.SMTPServerDisconnected("Unexpected EOF received"), D, Kind.RETRY, True, True),
    ("reply to the dot slower than timeout", aiosmtplib.SMTPReadTimeoutError("Timed out"),
     D, Kind.RETRY, True, True),
    ("our deadline inside DATA", TimeoutError(), D, Kind.RETRY, True, True),
    ("our deadline at MAIL", TimeoutError(), M, Kind.RETRY, True, False),
    ("disconnect at MAIL", aiosmtplib.SMTPServerDisconnected("gone"), M, Kind.RETRY, True,
     False),
    ("STARTTLS required, not offered",
     aiosmtplib.SMTPException("SMTP STARTTLS extension not supported by server."), C,
     Kind.RELAY, True, False),
    ("STARTTLS certificate invalid", ssl.SSLCertVerificationError("bad cert"), C,
     Kind.RELAY, True, False),
    ("implicit TLS to a plaintext port", _ssl_cause(), C, Kind.RELAY, True, False),
    ("AUTH 535", aiosmtplib.SMTPAuthenticationError(535, "5.7.8 bad credentials"), C,
     Kind.AUTH, False, False),
    ("530 at MAIL, AUTH required", aiosmtplib.SMTPSenderRefused(530, "5.7.0 auth", "s@x"), M,
     Kind.AUTH, False, False),
    ("username given, no AUTH offered",
     aiosmtplib.SMTPException("The SMTP AUTH extension is not supported"), C, Kind.RELAY,
     True, False),
    ("control characters in an address", ValueError("prohibited control character"), R,
     Kind.FAIL, False, False),
    ("SMTPUTF8 needed, not offered", aiosmtplib.SMTPNotSupported("SMTPUTF8"), M, Kind.FAIL,
     False, False),
    ("connection reset mid-command", ConnectionResetError(), R, Kind.RETRY, True, False),
    ("cancelled by asyncio timeout at connect", TimeoutError(), C, Kind.RELAY, True,
     False),
]


@pytest.mark.parametrize(("row", "exc", "phase", "kind", "reconnect", "ambiguous"), ROWS,
                         ids=[r[0] for r in ROWS])
def test_fault_map_row(row: str, exc: BaseException, phase: Phase, kind: Kind,
                       reconnect: bool, ambiguous: bool) -> None:
    written = None if "payload not written" not in row else False
    outcome = classify_exception(exc, phase, payload_sent=written)
    assert outcome.kind is kind, row
    assert outcome.reconnect is reconnect, row
    assert outcome.ambiguous is ambiguous, row
    assert outcome.reason and "x@example.com" not in outcome.reason


def test_partial_refusal_is_read_recipient_by_recipient() -> None:
    # sendmail-style result for 1 of 3 refused: each recipient gets its own outcome.
    errors = {"a@x.test": (550, "5.1.1 unknown"), "b@x.test": (451, "4.3.0 later")}
    kinds = {rcpt: classify_reply(code, text, Phase.RCPT).kind
             for rcpt, (code, text) in errors.items()}
    assert kinds == {"a@x.test": Kind.SUPPRESS, "b@x.test": Kind.RETRY}
    assert classify_reply(250, "2.0.0 queued", Phase.DATA).kind is Kind.SENT


def test_reasons_are_short_and_address_free() -> None:
    text = "5.1.1 <ana.perez@example.com>: Recipient address rejected: user unknown " * 5
    reason = classify_reply(550, text, Phase.RCPT).reason
    assert "ana.perez" not in reason and "<address>" in reason
    assert len(reason) < 130
    assert redact("a\r\nb  c") == "a b c"
