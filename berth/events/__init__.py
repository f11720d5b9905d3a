"""The registry's notifications: receiving its events, the activity feed, pull counts."""
