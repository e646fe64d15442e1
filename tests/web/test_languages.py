"""Which language a page speaks, and that every string has its Chinese."""

from collections import Counter

import pytest

from handlers.web.languages import CATALOGUE, choose, translations, untranslated
from handlers.web.vendored import differences


@pytest.mark.parametrize(
    ("asked", "remembered", "expected"),
    [
        (None, None, "zh_CN"),  # nothing said: the desk's own language
        (None, "en", "en"),  # chosen on a page before
        ("zh_CN", "en", "zh_CN"),  # chosen now
        ("klingon", None, "zh_CN"),
        (None, "../../etc", "zh_CN"),
    ],
)
def test_a_page_speaks_what_was_asked_then_what_was_chosen_before_then_chinese(asked, remembered, expected):
    assert choose(asked, remembered) == expected


def test_every_string_of_every_template_has_its_chinese():
    assert untranslated() == []


def test_no_message_is_in_the_catalogue_twice():
    """A second entry for a message silently gives every use of it the other's words ("Target":
    a clock's 目标时限 and the audit's 对象 once shared one id, and the audit's won everywhere)."""
    ids = Counter(
        line for line in CATALOGUE.read_text(encoding="utf-8").splitlines() if line.startswith("msgid ")
    )
    assert [line for line, n in ids.items() if n > 1 and line != 'msgid ""'] == []


def test_english_pages_are_the_message_ids_and_chinese_pages_their_translations():
    assert translations("en").gettext("Sign in") == "Sign in"
    assert translations("zh_CN").gettext("Sign in") == "登录"


def test_the_vendored_front_end_files_are_their_npm_packages_bytes():
    assert differences() == []
