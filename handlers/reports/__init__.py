"""SLA compliance reports: the result model, its SQL queries, the arguments, the renderings,
and the CLI and HTTP commands."""
