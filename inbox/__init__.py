"""The approval inbox: approvers decide from a browser, programs through a JSON API."""
