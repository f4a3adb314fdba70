"""Integrations with annotation tools (Label Studio)."""
