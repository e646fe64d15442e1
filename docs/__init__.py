"""Documentation made from the running desk: the screenshots script and what it puts in first."""
