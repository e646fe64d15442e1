"""Every bound on what a caller can send keydesk, in one place.

A worker serves HTTP on the same event loop that consumes Kafka and keeps
the consumer group's heartbeats.  Unbounded input was found to exhaust it
(issue 9): a report over 9,000 years, a wait on something that can never
arrive, a body that inflates without end.  Each constant below bounds one
such input; ``handlers/api/http_guard.py`` and the handlers enforce them and
answer a 4xx naming the field.  The README's table of bounds is this module
in prose: change both together.
"""

from __future__ import annotations

import re

from schemas.envelope import ID_MAX_LENGTH

# -- request bodies -------------------------------------------------------------------

#: Largest request body, counted after gzip decompression as well (so a gzip
#: bomb stops here).  A fault or a raw event is a few KiB.  Also aiohttp's
#: ``client_max_size`` (its default is 1 MiB).
MAX_BODY_BYTES = 256 * 1024
#: A rules document (``PUT /api/rules``): its UTF-8 text, as the rules topic takes it, and its
#: characters, as the document declares it (fewer than the body's bytes, so that a text just too
#: long is refused naming ``text``, not as a body too large).  The shipped file is ~20 KB.
MAX_RULES_BYTES = 256 * 1024
MAX_RULES_CHARACTERS = 100_000
#: The document's text must hold something other than white space.  The document says so as a
#: JSON Schema ``pattern``, which clients (schemathesis among them) read as an ECMA-262 regex, where
#: ``\s`` also covers U+FEFF and not U+0085; Python's ``\s`` is the other way round.  So the pattern
#: excludes U+0085 and the check excludes U+FEFF: both then call the same texts blank (the C0
#: controls that Python's ``\s`` also covers are refused anyway, as in every body).  A text of a
#: byte-order mark alone was accepted although the document refused it (CI, schemathesis ST201).
RULES_TEXT_PATTERN = r"[^\s\u0085]"
RULES_TEXT_NOT_BLANK = re.compile(r"[^\s\ufeff]")

#: ``Content-Encoding`` values a body may have; anything else is a 415.
BODY_ENCODINGS = ("identity", "gzip")

#: Requests reading or validating a body at once, per worker; one more gets a
#: 429.  With :data:`MAX_BODY_BYTES` this bounds the memory bodies can hold.
MAX_CONCURRENT_BODIES = 32

# -- identifiers and fields -----------------------------------------------------------

#: Longest path parameter (``customer_id``, ``item_id``), the envelope's id bound.
MAX_ID_LENGTH = ID_MAX_LENGTH

#: Longest acknowledgement note (the event catalogue's bound on free text).
MAX_NOTE_LENGTH = 2000

#: Highest clock cycle an acknowledgement may name (the event catalogue's bound).
MAX_CYCLE = 1000

#: Instants the API accepts (``occurred_at``, ``recorded_at``, ``at``, report
#: periods and ``as_of``) lie in these years, inclusive: outside them Python's
#: datetime overflows on a time-zone conversion and calendars walk for minutes.
MIN_YEAR, MAX_YEAR = 2000, 2099

# -- waits ------------------------------------------------------------------------------

#: ``GET .../view?wait_for=&timeout=``, a step's ``POST /api/faults/{id}/{action}?wait=``
#: and the owner's ``GET .../events/{event_id}?timeout=`` behind it: the longest and the
#: default wait, seconds.
MAX_WAIT_SECONDS = 10.0
DEFAULT_WAIT_SECONDS = 2.0

#: Read-your-writes waits held open at once per worker; one more gets a 429.
MAX_CONCURRENT_WAITS = 128

#: A read forwarded to the worker owning the customer (faust's table routing),
#: and the dispatch queue's calls to the other workers: longer than the longest
#: wait, so a routed ``wait_for`` can finish.
ROUTED_READ_TIMEOUT_SECONDS = MAX_WAIT_SECONDS + 5.0

#: An acknowledgement received by a worker that does not own the customer asks
#: the owner whether the item exists, for at most this long.
OWNER_CHECK_TIMEOUT_SECONDS = 2.0

# -- lists ------------------------------------------------------------------------------

#: ``GET /api/dispatch-queue?limit=``: the default and the most rows.
DEFAULT_QUEUE_LIMIT, MAX_QUEUE_LIMIT = 50, 1000

#: Dispatch queues computed at once per worker (each walks every owned view).
MAX_CONCURRENT_QUEUES = 4

#: ``GET /api/customers?limit=``: the default and the most customers on one page.
DEFAULT_ARCHIVE_PAGE, MAX_ARCHIVE_PAGE = 50, 200

#: ``GET /api/customers/{id}/services?limit=``: the most services on one page (default 50).
MAX_SERVICE_PAGE = 500

#: Longest search text ``q`` and filter value of ``GET /api/customers``.
MAX_SEARCH_LENGTH = 120

#: Archive lists answered from the reporting database at once per worker, each in
#: a thread (never on the event loop); one more gets a 429.  Each query is
#: interrupted after :data:`ARCHIVE_QUERY_SECONDS`.
MAX_CONCURRENT_ARCHIVE_READS = 4
ARCHIVE_QUERY_SECONDS = 5.0

# -- compliance reports ---------------------------------------------------------------

#: Longest report period, in local calendar days (a leap year).  The report
#: keys items by week, one CASE branch (and bound parameter) per week, in two
#: queries: ``from=1000-01-01`` was 53,583 weeks, 107,166 parameters, 8 s to
#: compile alone, 0.8 GB; ``from=0001-01-01`` was more parameters than SQLite takes.
MAX_REPORT_DAYS = 366

#: Most breaches a report lists over HTTP (the CLI's ``--breaches 0`` lists all).
MAX_REPORT_BREACHES = 5000

#: Reports computed at once per worker, in a thread of their own; one more gets
#: a 429 with ``Retry-After``.
MAX_CONCURRENT_REPORTS = 1
REPORT_RETRY_AFTER_SECONDS = 5

#: A report's queries over HTTP are interrupted after this long (the CLI has
#: no limit: a bigger export belongs there).
REPORT_TIME_LIMIT_SECONDS = 120.0

# -- what it adds up to -------------------------------------------------------------------

#: Seconds a client is told to wait on a 429 for a busy worker.
BUSY_RETRY_AFTER_SECONDS = 1

#: Memory the HTTP side of one worker may use beyond its idle size, whatever
#: the requests: bodies (:data:`MAX_CONCURRENT_BODIES` x :data:`MAX_BODY_BYTES`,
#: about x16 once parsed: 128 MiB), one report (its figures are sums per
#: group and week; 5,000 listed breaches; ~64 MiB), waits and routed reads
#: (a few KiB each).  tests/e2e/test_http_hardening.py holds a worker to it.
HTTP_MEMORY_BUDGET_BYTES = 256 * 1024 * 1024
