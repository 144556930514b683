"""The inbox's routes, one router per area: sign-in, the pages, the JSON API."""
