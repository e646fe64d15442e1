"""What a developer's machine runs instead of real infrastructure: a local Apache Kafka
broker (and its jars) and a throwaway PostgreSQL."""
