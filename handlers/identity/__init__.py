"""Identity: who a request comes from, what they may do, and the audit of it (issue 11, points 4-6)."""
