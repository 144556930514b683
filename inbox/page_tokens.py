"""The lists' ``page_token``: Temporal's visibility page token, signed and bound to its list."""

import base64

from itsdangerous import BadSignature, URLSafeSerializer


class BadPageTokenError(Exception):
    """A ``page_token`` this inbox did not hand out for this list."""


class PageTokens:
    """Temporal's page tokens, signed with the inbox's secret and bound to their list: a
    token made up, altered, or taken from the other list is refused (422) here, instead of
    reaching the visibility store (which answers such bytes with an opaque error)."""

    def __init__(self, secret: str) -> None:
        self._serializer = URLSafeSerializer(secret, salt="inbox-page-token")

    def make(self, list_name: str, token: bytes | None) -> str | None:
        if token is None:
            return None
        return self._serializer.dumps([list_name, base64.b64encode(token).decode()])

    def read(self, list_name: str, signed: str | None) -> bytes | None:
        if not signed:
            return None
        try:
            name, token = self._serializer.loads(signed)
            if name != list_name:
                raise ValueError(name)
            return base64.b64decode(token, validate=True)
        except (BadSignature, ValueError, TypeError):
            raise BadPageTokenError(
                "page_token: not a token this inbox handed out for this list"
            ) from None
