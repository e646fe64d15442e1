"""Settings read from the environment: defaults that work on a fresh clone, clear errors."""

import pytest
from sqlalchemy import create_engine, text

from streams.settings import Settings, SettingsError


class TestDefaults:
    def test_the_database_defaults_to_a_sqlite_file_in_the_data_dir(self, tmp_path):
        """Zero set-up: KEYDESK_DB unset means a SQLite file keydesk can open."""
        settings = Settings.from_env({"KEYDESK_DATA_DIR": str(tmp_path)})
        engine = create_engine(settings.database_url)
        with engine.connect() as connection:
            assert connection.execute(text("select 1")).scalar() == 1
        engine.dispose()
        assert (tmp_path / "keydesk.sqlite").exists()

    def test_keydesk_db_reaches_postgresql(self, postgres_url):
        """A KEYDESK_DB URL is used as given: here the suite's throwaway PostgreSQL."""
        settings = Settings.from_env({"KEYDESK_DB": postgres_url})
        engine = create_engine(settings.database_url)
        with engine.connect() as connection:
            assert "PostgreSQL" in connection.execute(text("select version()")).scalar()
        engine.dispose()

    def test_replay_mode_only_logs_alerts_unless_told(self):
        """Replaying old events must not page managers about last month."""
        assert Settings.from_env({"KEYDESK_CLOCK": "replay"}).alert_delivery == "log"
        assert Settings.from_env({}).alert_delivery == "send"

    def test_workers_sharing_a_data_dir_share_the_desk_secret_made_at_first_use(self, tmp_path):
        """A local desk needs no set-up: the first worker makes the secret, the others read it."""
        first = Settings.from_env({"KEYDESK_DATA_DIR": str(tmp_path)}).signing_key
        again = Settings.from_env({"KEYDESK_DATA_DIR": str(tmp_path)}).signing_key
        assert first == again and len(first) == 64
        assert (tmp_path / "secret").stat().st_mode & 0o077 == 0
        assert [p.name for p in tmp_path.iterdir()] == ["secret"]

    def test_keydesk_secret_wins_over_the_file(self, tmp_path):
        env = {"KEYDESK_DATA_DIR": str(tmp_path), "KEYDESK_SECRET": "s" * 32}
        assert Settings.from_env(env).signing_key == b"s" * 32
        assert not (tmp_path / "secret").exists()


class TestErrors:
    @pytest.mark.parametrize(
        "env, words",
        [
            ({"KEYDESK_HTTP_PORT": "eighty"}, "KEYDESK_HTTP_PORT"),
            ({"KEYDESK_PARTITIONS": "0"}, "outside"),
            ({"KEYDESK_TIMEZONE": "Mars/Olympus"}, "IANA"),
            ({"KEYDESK_CLOCK": "sundial"}, "KEYDESK_CLOCK"),
            ({"KEYDESK_SMTP": "mail.example.cn"}, "host:port"),
            ({"KEYDESK_SECRET": "short"}, "KEYDESK_SECRET"),
        ],
    )
    def test_a_bad_variable_is_named(self, env, words):
        """A wrong setting fails at start, naming the variable."""
        with pytest.raises(SettingsError, match=words):
            Settings.from_env(env)
