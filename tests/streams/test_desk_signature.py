"""The desk's secret signs acknowledgements; its fingerprint names it in logs without telling it."""

from structlog.testing import capture_logs

from handlers.composition import announce_secret
from streams.desk_signature import fingerprint, is_signed, signature_headers
from streams.settings import Settings

SECRET = b"s" * 32


def test_a_record_signed_with_the_desks_secret_is_its_own_and_no_other_is():
    value = b'{"event_type": "sla.escalation_acknowledged"}'
    headers = signature_headers(SECRET, value)
    assert is_signed(SECRET, value, headers)
    assert not is_signed(b"t" * 32, value, headers)  # another desk's worker
    assert not is_signed(SECRET, value + b" ", headers)  # the bytes changed on the way
    assert not is_signed(SECRET, value, [])


def test_workers_with_one_secret_log_one_fingerprint_which_does_not_tell_the_secret():
    assert fingerprint(SECRET) == fingerprint(bytes(SECRET))
    assert fingerprint(SECRET) != fingerprint(b"t" * 32)
    assert SECRET.decode()[:12] not in fingerprint(SECRET)
    assert len(fingerprint(SECRET)) == 12


def test_a_worker_warns_when_its_secret_is_its_data_directorys_own(tmp_path):
    """Two machines' workers without KEYDESK_SECRET would each make one: the log says so."""
    with capture_logs() as own:
        announce_secret(Settings.from_env({}, data_dir=tmp_path))
    with capture_logs() as shared:
        announce_secret(Settings.from_env({"KEYDESK_SECRET": "x" * 40}, data_dir=tmp_path))
    assert [(e["event"], e["log_level"]) for e in own] == [("worker.secret", "warning")]
    assert "KEYDESK_SECRET" in own[0]["advice"]
    assert [(e["event"], e["log_level"], e["source"]) for e in shared] == [
        ("worker.secret", "info", "KEYDESK_SECRET")
    ]
    assert shared[0]["fingerprint"] == fingerprint(b"x" * 40)
