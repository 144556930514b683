"""Temporal's remote codec contract over HTTP, so authorised people read encrypted payloads.

The Web UI and ``temporal workflow show --codec-endpoint`` send the server's encrypted
payloads here and show what comes back. The codec is the one every client of this project
uses (``client.connection.data_converter()``); this package only adds HTTP, CORS and the token.
"""
