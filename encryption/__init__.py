"""Opt-in payload encryption: the keys (``keys.py``) and the codec that uses them (``codec.py``).

``client.connection.data_converter()`` puts the codec into every client, so the worker, the
scripts, the demo and the codec server (``python -m codec_server``) all encrypt and decrypt
the same way.
"""
