"""Escalation alerts: who is told (routing), how (channels), and the agent that sends them once (sender)."""
