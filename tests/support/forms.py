"""Multipart bodies for tests: Falcon's test client has no multipart helper."""

from __future__ import annotations

import secrets


def multipart(
    fields: dict[str, str] | None = None,
    files: dict[str, tuple[str, bytes, str]] | None = None,
    boundary: str | None = None,
) -> tuple[bytes, str]:
    """Return (body, content_type). ``files`` maps a field to (filename, data, content type)."""
    boundary = boundary or f"mosic-{secrets.token_hex(8)}"
    parts: list[bytes] = []
    for name, value in (fields or {}).items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n'
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n".encode()
            + value.encode()
            + b"\r\n"
        )
    for name, (filename, data, content_type) in (files or {}).items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: {content_type}\r\n\r\n'.encode()
            + data
            + b"\r\n"
        )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"
