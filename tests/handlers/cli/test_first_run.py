"""`keydesk up`'s first run: the first admin once, demo users, the CLI signed in (no broker needed)."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime

from handlers.cli.running import DEMO_CLI_USER, first_run
from handlers.cli.shared import bearer_token, credentials_file
from handlers.identity.passwords import verify_password
from handlers.identity.store import IdentityStore, prepare_database
from streams.settings import Settings


def test_the_first_admin_is_made_once_with_a_one_time_password(tmp_path, monkeypatch):
    monkeypatch.delenv("KEYDESK_TOKEN", raising=False)
    settings = Settings.from_env({}, data_dir=tmp_path)
    lines = first_run(settings, demo=False, api="http://127.0.0.1:1")
    assert len(lines) == 1 and lines[0].startswith("  first admin admin, one-time password ")
    password = lines[0].split("one-time password ")[1].split()[0]
    store = IdentityStore(prepare_database(settings.database_url))
    admin = store.user("admin")
    assert admin.roles == ["admin"] and admin.must_change_password
    assert verify_password(admin.password_hash, password)
    assert first_run(settings, demo=False, api="http://127.0.0.1:1") == []  # never a second one
    assert not credentials_file(settings).exists()


def test_demo_users_are_printed_and_the_cli_is_signed_in_as_the_hotline(tmp_path, monkeypatch):
    monkeypatch.delenv("KEYDESK_TOKEN", raising=False)
    settings = Settings.from_env({}, data_dir=tmp_path)
    lines = first_run(settings, demo=True, api="http://127.0.0.1:1")
    demo = [line for line in lines if line.startswith("  demo user")]
    assert len(demo) == 5 and any("demo-am" in line and "AM-101" in line for line in demo)
    saved = credentials_file(settings)
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert json.loads(saved.read_text())["username"] == DEMO_CLI_USER
    monkeypatch.setenv("KEYDESK_DATA_DIR", str(tmp_path))
    token = bearer_token()
    store = IdentityStore(prepare_database(settings.database_url))
    assert store.token_identity(token, datetime.now(UTC)).name == DEMO_CLI_USER
    assert [line for line in first_run(settings, demo=True, api="x") if "demo user" in line] == []
