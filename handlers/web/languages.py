"""The desk's languages: Chinese (zh-CN) by default, English on request, from one catalogue.

Every string is written once, in English, as a gettext message id in the
templates (``{{ _("Sign in") }}``); ``locale/zh_CN/LC_MESSAGES/keydesk.po``
translates each.  English pages are the message ids themselves, so there is no
English catalogue to keep in step.  The ``.po`` file is read at start (Babel),
so no compiled ``.mo`` is checked in next to it.
"""

from __future__ import annotations

import gettext
import io
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LANGUAGES = ("zh_CN", "en")
DEFAULT = "zh_CN"
HTML_LANG = {"zh_CN": "zh-CN", "en": "en"}
CATALOGUE = Path(__file__).parent / "locale" / "zh_CN" / "LC_MESSAGES" / "keydesk.po"
TEMPLATES = Path(__file__).parent / "templates"


def translations(language: str) -> gettext.NullTranslations:
    """The gettext translations of ``language``: the catalogue's for Chinese, none for English."""
    if language == "en":
        return gettext.NullTranslations()
    with CATALOGUE.open("rb") as po:
        catalogue = read_po(po, locale="zh_CN")
    compiled = io.BytesIO()
    write_mo(compiled, catalogue)
    compiled.seek(0)
    return Translations(compiled, domain="keydesk")


def choose(asked: str | None, remembered: str | None) -> str:
    """The page's language: asked for now (``?lang=``), else chosen before (cookie), else Chinese.

    Not the browser's Accept-Language: the desk's staff work in Chinese, and a
    browser set up in English (many office machines are) is not a request.
    """
    for given in (asked, remembered):
        if given in LANGUAGES:
            return given
    return DEFAULT


def untranslated() -> list[str]:
    """Message ids used by the templates that the Chinese catalogue does not translate."""
    from babel.messages.extract import extract_from_dir

    used = {
        message
        for _, _, message, _, _ in extract_from_dir(
            str(TEMPLATES),
            method_map=[("**.html", "jinja2.ext:babel_extract")],
            options_map={"**.html": {"extensions": "jinja2.ext.i18n"}},
        )
    }
    with CATALOGUE.open("rb") as po:
        catalogue = read_po(po, locale="zh_CN")
    translated = {m.id for m in catalogue if m.id and m.string}
    return sorted(str(m) for m in used if m not in translated)
