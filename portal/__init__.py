"""The web app for social workers and Virtual Schools (a later issue)."""
