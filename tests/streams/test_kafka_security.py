"""Kafka transport security settings: what each combination gives the clients, and what is refused.

No broker here (``tests/e2e/test_kafka_security.py`` has one): the settings, the
TLS context built from real PEM files, and the options handed to aiokafka and to
faust, compared with faust's own translation so that the worker and the other
clients cannot drift apart.
"""

from __future__ import annotations

import ssl

import faust
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from handlers.cli import main
from streams.app import broker_credentials, build_streams
from streams.kafka_security import client_options, describe, ssl_context
from streams.settings import Settings, SettingsError
from tests.conftest import service_missing
from tests.kafka_tls import OpensslMissing, TlsFiles, make_tls_files


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> TlsFiles:
    try:
        return make_tls_files(tmp_path_factory.mktemp("tls"))
    except OpensslMissing as exc:
        service_missing("openssl", str(exc))
        raise


def scram(tls: TlsFiles, **more: str) -> dict[str, str]:
    return {
        "KEYDESK_KAFKA": "kafka.example.cn:9093",
        "KEYDESK_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KEYDESK_KAFKA_CA_FILE": str(tls.ca),
        "KEYDESK_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KEYDESK_KAFKA_SASL_USERNAME": "keydesk-worker",
        "KEYDESK_KAFKA_SASL_PASSWORD": "s3cret pass",
        **more,
    }


def without_context(options: dict) -> dict:
    return {k: v for k, v in options.items() if k != "ssl_context"}


class TestWhatTheClientsGet:
    def test_plaintext_is_the_default_and_adds_nothing(self):
        """A fresh clone and the local broker: no TLS, no SASL, faust's default credentials."""
        settings = Settings.from_env({})
        assert client_options(settings) == {"security_protocol": "PLAINTEXT"}
        assert broker_credentials(settings) is None
        assert ssl_context(settings) is None

    def test_sasl_ssl_checks_the_brokers_certificate_and_host_name(self, tls):
        """SASL_SSL: TLS that verifies the broker against the CA file and its name, then SCRAM."""
        options = client_options(Settings.from_env(scram(tls)))
        context = options["ssl_context"]
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
        assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "keydesk test ca"),),)]
        assert without_context(options) == {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": "keydesk-worker",
            "sasl_plain_password": "s3cret pass",
        }

    @pytest.mark.parametrize(
        "protocol, extra",
        [
            ("SASL_SSL", {}),
            ("SASL_PLAINTEXT", {"KEYDESK_KAFKA_CA_FILE": ""}),
            ("SSL", {"KEYDESK_KAFKA_SASL_MECHANISM": "", "KEYDESK_KAFKA_SASL_USERNAME": ""}),
        ],
    )
    def test_the_worker_gets_through_faust_what_every_other_client_gets(self, tls, protocol, extra):
        """faust's translation of the worker's broker_credentials equals client_options."""
        env = scram(tls, KEYDESK_KAFKA_SECURITY_PROTOCOL=protocol, **extra)
        if protocol == "SSL":
            env.pop("KEYDESK_KAFKA_SASL_PASSWORD")
        settings = Settings.from_env(env)
        ours = client_options(settings)
        fausts = credentials_to_aiokafka_auth(broker_credentials(settings))
        assert without_context(fausts) == without_context(ours)
        assert ("ssl_context" in ours) == (protocol != "SASL_PLAINTEXT")
        assert (fausts.get("ssl_context") is None) == (protocol == "SASL_PLAINTEXT")

    def test_the_faust_app_is_built_with_the_credentials(self, tls):
        """build_streams hands them to the app, whose consumer, producer and topic creation use them."""
        streams = build_streams(Settings.from_env(scram(tls)))
        credentials = streams.app.conf.broker_credentials
        assert isinstance(credentials, faust.SASLCredentials)
        assert credentials.protocol.value == "SASL_SSL" and credentials.mechanism.value == "SCRAM-SHA-512"
        assert credentials.username == "keydesk-worker"

    def test_a_client_certificate_is_loaded_for_mutual_tls(self, tls):
        settings = Settings.from_env(
            {
                "KEYDESK_KAFKA": "kafka:9093",
                "KEYDESK_KAFKA_SECURITY_PROTOCOL": "ssl",
                "KEYDESK_KAFKA_CA_FILE": str(tls.ca),
                "KEYDESK_KAFKA_CERT_FILE": str(tls.client_cert),
                "KEYDESK_KAFKA_KEY_FILE": str(tls.client_key),
            }
        )
        assert settings.kafka_security_protocol == "SSL"  # Kafka's names, in any case
        assert isinstance(broker_credentials(settings), faust.SSLCredentials)
        assert describe(settings) == "SSL with a client certificate"

    def test_without_a_ca_file_the_systems_trusted_cas_are_used(self, tls):
        """A cluster with a publicly signed certificate needs no CA file."""
        env = scram(tls, KEYDESK_KAFKA_CA_FILE="")
        context = ssl_context(Settings.from_env(env))
        assert context is not None and context.verify_mode == ssl.CERT_REQUIRED
        assert context.cert_store_stats()["x509_ca"] == len(ssl.create_default_context().get_ca_certs())

    def test_the_password_may_come_from_a_file(self, tls, tmp_path):
        """A mounted secret: its trailing newline is not part of the password."""
        secret = tmp_path / "password"
        secret.write_text(" spaced secret \n")
        env = scram(tls, KEYDESK_KAFKA_SASL_PASSWORD_FILE=str(secret))
        env.pop("KEYDESK_KAFKA_SASL_PASSWORD")
        assert Settings.from_env(env).kafka_sasl_password == " spaced secret "

    def test_the_password_is_never_shown(self, tls):
        settings = Settings.from_env(scram(tls))
        assert "s3cret" not in repr(settings)
        assert describe(settings) == "SASL_SSL SCRAM-SHA-512 as keydesk-worker"


class TestRefused:
    @pytest.mark.parametrize(
        "change, words",
        [
            ({"KEYDESK_KAFKA_SECURITY_PROTOCOL": "TLS"}, "KEYDESK_KAFKA_SECURITY_PROTOCOL='TLS': use one of"),
            ({"KEYDESK_KAFKA_SASL_MECHANISM": "GSSAPI"}, "KEYDESK_KAFKA_SASL_MECHANISM='GSSAPI'"),
            ({"KEYDESK_KAFKA_SASL_MECHANISM": ""}, "SASL_SSL needs KEYDESK_KAFKA_SASL_MECHANISM"),
            ({"KEYDESK_KAFKA_SASL_USERNAME": ""}, "SASL_SSL needs KEYDESK_KAFKA_SASL_USERNAME"),
            ({"KEYDESK_KAFKA_SASL_PASSWORD": ""}, "needs KEYDESK_KAFKA_SASL_PASSWORD \\(or"),
            ({"KEYDESK_KAFKA_SECURITY_PROTOCOL": "SSL"}, "KEYDESK_KAFKA_SASL_MECHANISM is set but"),
            ({"KEYDESK_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}, "KEYDESK_KAFKA_CA_FILE is set but"),
            (
                {"KEYDESK_KAFKA_CA_FILE": "/nowhere/ca.pem"},
                "KEYDESK_KAFKA_CA_FILE='/nowhere/ca.pem': no such",
            ),
            ({"KEYDESK_KAFKA_KEY_FILE": "{client_key}"}, "KEYDESK_KAFKA_KEY_FILE is set without"),
            (
                {"KEYDESK_KAFKA_SASL_PASSWORD_FILE": "/nowhere/pw", "KEYDESK_KAFKA_SASL_PASSWORD": ""},
                "KEYDESK_KAFKA_SASL_PASSWORD_FILE='/nowhere/pw'",
            ),
            ({"KEYDESK_KAFKA_SASL_PASSWORD_FILE": "{ca}"}, "KEYDESK_KAFKA_SASL_PASSWORD or .*not both"),
        ],
    )
    def test_a_combination_that_cannot_work_fails_at_start_naming_the_variable(self, tls, change, words):
        env = scram(tls, **{k: v.format(ca=tls.ca, client_key=tls.client_key) for k, v in change.items()})
        with pytest.raises(SettingsError, match=words):
            Settings.from_env(env)

    def test_a_file_that_is_not_a_certificate_is_named(self, tls, tmp_path):
        """The CA file is loaded at start: a key where a certificate belongs stops it there."""
        with pytest.raises(SettingsError, match="KEYDESK_KAFKA_CA_FILE=.*client.key"):
            Settings.from_env(scram(tls, KEYDESK_KAFKA_CA_FILE=str(tls.client_key)))

    def test_a_client_certificate_with_another_key_is_refused(self, tls):
        env = scram(
            tls, KEYDESK_KAFKA_CERT_FILE=str(tls.client_cert), KEYDESK_KAFKA_KEY_FILE=str(tls.broker_key)
        )
        with pytest.raises(
            SettingsError, match="KEYDESK_KAFKA_CERT_FILE=.*cannot load the client certificate"
        ):
            Settings.from_env(env)

    def test_an_empty_password_file_is_refused(self, tls, tmp_path):
        (tmp_path / "empty").write_text("\n")
        env = scram(tls, KEYDESK_KAFKA_SASL_PASSWORD_FILE=str(tmp_path / "empty"))
        env.pop("KEYDESK_KAFKA_SASL_PASSWORD")
        with pytest.raises(SettingsError, match="is empty"):
            Settings.from_env(env)

    def test_keydesk_up_will_not_start_its_plaintext_broker_for_secured_settings(
        self, tls, monkeypatch, capsys
    ):
        """Security settings mean a cluster: without KEYDESK_KAFKA, `keydesk up` says so and stops."""
        for name, value in scram(tls).items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("KEYDESK_KAFKA")
        assert main(["up"]) == 2
        assert "KEYDESK_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KEYDESK_KAFKA" in capsys.readouterr().err
