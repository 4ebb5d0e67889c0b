"""The gettext catalogs: in step with the sources, complete, and shipped compiled.

``digest/locale/digest.pot`` must hold every message the code and templates use (extracted
again here with ``babel.cfg``); every shipped language translates every one of them, with no
fuzzy entry and matching placeholders; the package build compiles them into ``.mo`` files,
and without a build (an editable install, a newsroom's new language) the ``.po`` is compiled
when it is loaded, while a stale ``.mo`` is never used.
"""

from __future__ import annotations

import gettext
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from babel.messages.frontend import CommandLineInterface
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from digest import i18n
from digest.config import load_settings
from digest.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
LOCALE = REPO / "digest" / "locale"
SHIPPED = ("en", "fr")


def read(path: Path):
    with path.open("rb") as fh:
        return read_po(fh)


def keys(catalog) -> set[tuple[str | None, object]]:
    return {(m.context, m.id) for m in catalog if m.id}


def test_the_template_holds_every_message_of_the_sources(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.pot"
    cwd = os.getcwd()
    try:
        os.chdir(REPO)
        CommandLineInterface().run(["pybabel", "-q", "extract", "-F", "babel.cfg",
                                    "-o", str(fresh), "."])
    finally:
        os.chdir(cwd)
    extracted, committed = keys(read(fresh)), keys(read(LOCALE / "digest.pot"))
    assert extracted - committed == set(), "run the README's pybabel extract + update"
    assert committed - extracted == set(), "digest.pot lists messages no source uses"
    assert len(committed) > 100


@pytest.mark.parametrize("language", SHIPPED)
def test_every_shipped_catalog_is_complete(language: str) -> None:
    catalog = read(LOCALE / language / "LC_MESSAGES" / "digest.po")
    assert keys(catalog) == keys(read(LOCALE / "digest.pot"))
    assert not catalog.obsolete
    untranslated, fuzzy = [], []
    for message in catalog:
        if not message.id:
            continue
        forms = message.string if isinstance(message.string, tuple) else (message.string,)
        if not all(forms) or (message.pluralizable and len(forms) != catalog.num_plurals):
            untranslated.append(message.id)
        if message.fuzzy:
            fuzzy.append(message.id)
    assert untranslated == [] and fuzzy == []
    assert [(m.id, errors) for m, errors in catalog.check()] == []  # placeholders match


def test_french_keeps_its_typography() -> None:
    """A no-break space before : ; ? ! so a line never starts with one."""
    catalog = read(LOCALE / "fr" / "LC_MESSAGES" / "digest.po")
    for message in catalog:
        if not message.id:
            continue  # the header
        for form in (message.string if isinstance(message.string, tuple)
                     else (message.string,)):
            for mark in ":;?!":
                assert f" {mark}" not in form, form
            assert "'" not in form, form  # the typographic apostrophe


def test_the_build_compiles_the_catalogs_into_the_package(tmp_path: Path) -> None:
    """What ``pip install .`` runs: setup.py's build_py writes the .mo files."""
    src = tmp_path / "src"
    shutil.copytree(REPO / "digest", src / "digest",
                    ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "templates", src / "templates")
    lib = tmp_path / "lib"
    result = subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib",
                             str(lib)], cwd=src, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    for language in SHIPPED:
        mo = lib / "digest" / "locale" / language / "LC_MESSAGES" / "digest.mo"
        po = lib / "digest" / "locale" / language / "LC_MESSAGES" / "digest.po"
        assert mo.is_file() and po.is_file()
        with mo.open("rb") as fh:
            compiled = gettext.GNUTranslations(fh)
        expected = {"en": "Unsubscribe", "fr": "Se désabonner"}[language]
        assert compiled.gettext("Unsubscribe") == expected
    assert (lib / "digest" / "locale" / "digest.pot").is_file()


def write_catalog(folder: Path, language: str, messages: dict[str, str]) -> Path:
    path = folder / language / "LC_MESSAGES" / "digest.po"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(f'msgid "{k}"\nmsgstr "{v}"\n\n' for k, v in messages.items())
    path.write_text(textwrap.dedent(f"""\
        msgid ""
        msgstr ""
        "Language: {language}\\n"
        "Content-Type: text/plain; charset=utf-8\\n"

        """) + body, encoding="utf-8")
    return path


def test_a_newsrooms_catalog_works_without_a_build_and_a_stale_mo_is_ignored(
        tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    po = write_catalog(templates / "locale", "de", {"Unsubscribe": "Abbestellen"})
    i18n._load.cache_clear()
    assert i18n.load_translations("de", templates).gettext("Unsubscribe") == "Abbestellen"
    # A .mo left over from an older .po is not used ...
    old = po.with_suffix(".mo")
    with po.open("rb") as fh:
        catalog = read_po(fh)
    catalog.get("Unsubscribe").string = "Veraltet"
    with old.open("wb") as fh:
        write_mo(fh, catalog)
    os.utime(old, (po.stat().st_mtime - 60,) * 2)
    i18n._load.cache_clear()
    assert i18n.load_translations("de", templates).gettext("Unsubscribe") == "Abbestellen"
    # ... a newer one is.
    os.utime(old, (po.stat().st_mtime + 60,) * 2)
    i18n._load.cache_clear()
    assert i18n.load_translations("de-AT", templates).gettext("Unsubscribe") == "Veraltet"
    i18n._load.cache_clear()


def test_a_newsroom_rewords_one_message_and_keeps_the_rest(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    write_catalog(templates / "locale", "fr", {"Unsubscribe": "Se désinscrire"})
    write_catalog(templates / "locale", "fr_CA", {"Links": "Hyperliens"})
    tr = i18n.load_translations("fr-CA", templates)
    assert tr.gettext("Links") == "Hyperliens"  # fr_CA, the newsroom's
    assert tr.gettext("Unsubscribe") == "Se désinscrire"  # fr, the newsroom's
    assert tr.gettext("Subscribe") == "S’abonner"  # fr, shipped
    assert tr.gettext("Not a message") == "Not a message"
    assert i18n.load_translations("fr").gettext("Unsubscribe") == "Se désabonner"


# --------------------------------------------------------------------------- configuration


def config(tmp_path: Path, language: str | None) -> Path:
    line = f'language = "{language}"\n' if language is not None else ""
    path = tmp_path / "digest.toml"
    path.write_text(textwrap.dedent(f"""\
        [digest]
        work_dir = "var"
        templates_dir = "{REPO / 'templates'}"
        [site]
        name = "Le Matin"
        url = "https://news.example.fr"
        postal_address = "Le Matin, 1 rue de la Presse, 75002 Paris"
        [web]
        base_url = "https://news.example.fr/digest"
        [lists.quotidien]
        from = "Le Matin <matin@news.example.fr>"
        """) + line, encoding="utf-8")
    return path


@pytest.mark.parametrize(("given", "stored"), [
    (None, "en"), ("fr", "fr"), ("FR-ca", "fr-CA"), ("en_GB", "en-GB"), ("zh-hant-tw", None),
])
def test_the_language_setting_is_normalised_bcp47(tmp_path: Path, given, stored) -> None:
    if stored is None:  # a known locale without a catalog: refused, spelt properly
        with pytest.raises(ConfigError, match="is 'zh-Hant-TW', which has no translation"):
            load_settings(config(tmp_path, given), env={"DIGEST_SECRET_KEY": "k" * 32})
        return
    settings = load_settings(config(tmp_path, given), env={"DIGEST_SECRET_KEY": "k" * 32})
    assert settings.get_list("quotidien").language == stored


@pytest.mark.parametrize(("given", "problem"), [
    ("xx-QQ", "is not a language Babel knows"),
    ("français", "is not a language Babel knows"),
    ("", "is not a language Babel knows"),
    ("de", "has no translation catalog (available: en, fr)"),
])
def test_a_bad_language_is_one_clear_config_error(tmp_path: Path, given, problem) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(config(tmp_path, given), env={"DIGEST_SECRET_KEY": "k" * 32})
    message = str(info.value)
    assert message.startswith("Setting lists.quotidien.language in ")
    assert problem in message and "\n" not in message and message.endswith(".")


def test_a_language_that_is_not_a_string_is_refused(tmp_path: Path) -> None:
    path = config(tmp_path, None)
    path.write_text(path.read_text(encoding="utf-8") + "language = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="must be a language tag string"):
        load_settings(path, env={"DIGEST_SECRET_KEY": "k" * 32})


def test_dates_and_directions_follow_the_language() -> None:
    from datetime import date

    day = date(2025, 8, 25)
    assert i18n.format_day(day, "en") == "Monday, August 25, 2025"
    assert i18n.format_day(day, "en-GB") == "Monday, 25 August 2025"
    assert i18n.format_day(day, "fr") == "lundi 25 août 2025"
    assert i18n.format_long(day, "fr") == "25 août 2025"
    assert i18n.weekday_name(day, "fr") == "lundi"
    assert f"{i18n.LocalDate.of(day, 'fr'):%A %d %B %Y}" == "lundi 25 août 2025"
    assert f"{i18n.LocalDate.of(day, 'en'):%a %d %b %Y, 100%%}" == "Mon 25 Aug 2025, 100%"
    assert f"{i18n.LocalDate.of(day, 'fr')}" == "2025-08-25"
    assert (i18n.text_direction("ar"), i18n.text_direction("fr")) == ("rtl", "ltr")


def test_the_readme_recipe_adds_a_language(tmp_path: Path) -> None:
    """Copy the .pot, translate, set the language: the email speaks it, no build step."""
    import re
    from dataclasses import replace

    from render_editions import LIST, SITE, WEB, person, seed_edition

    from digest.render import Renderer

    templates = tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    po = templates / "locale" / "de" / "LC_MESSAGES" / "digest.po"
    po.parent.mkdir(parents=True)
    text = (LOCALE / "digest.pot").read_text(encoding="utf-8")
    for english, german in (("Unsubscribe", "Abbestellen"), ("Hi %(name)s,", "Hallo %(name)s,")):
        text = text.replace(f'msgid "{english}"\nmsgstr ""', f'msgid "{english}"\nmsgstr "{german}"')
    po.write_text(text, encoding="utf-8")
    path = config(tmp_path, "de")
    path.write_text(path.read_text(encoding="utf-8").replace(
        str(REPO / "templates"), str(templates)), encoding="utf-8")
    assert load_settings(path, env={"DIGEST_SECRET_KEY": "k" * 32}).lists["quotidien"] \
        .language == "de"
    renderer = Renderer(templates_dir=templates, site=SITE, web_base_url=WEB,
                        list_settings=replace(LIST, language="de"))
    html, text = renderer.variant(seed_edition()).fill(person())
    assert re.search(r'<html lang="de"', html) and ">Abbestellen</a>" in html
    assert "Hallo Ana," in html and "Hallo Ana," in text
    assert "Montag, 25. August 2025" in html  # CLDR's German, no catalog needed for dates
    assert "View in browser" in html  # not translated yet: the English msgid
