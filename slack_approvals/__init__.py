"""Deciding from Slack: approval messages with buttons, and the route that takes the presses."""
