"""The log filter: one test per redaction pattern, then the filter itself (third-party forms,
record args, exceptions, propagation, several handlers, secrets learnt while running)."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from hardening.logforms import known_form, summarise_token
from hardening.logredact import LogRedaction, base64_cores, install_log_redaction, redact_text, register_secret

SECRET = "S3cret'Pa\"ss\\wörd-7a1c"
USER = "lab\\hardening"


def ntlm_message(kind: int, size: int = 64) -> bytes:
    """An NTLM message of ``kind`` (1 NEGOTIATE, 2 CHALLENGE, 3 AUTHENTICATE) with random content."""
    return b"NTLMSSP\x00" + kind.to_bytes(4, "little") + os.urandom(size)


def redact(text: str, *secrets: str) -> str:
    return LogRedaction(secrets).redact(text)


# -- patterns --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shift", [0, 1, 2])
def test_ntlm_message_in_base64_at_any_alignment(shift: int) -> None:
    # shift 0 is a bare NTLM token (TlRMTVNTUA…); 1 and 2 are NTLM wrapped in a longer token (SPNEGO).
    blob = base64.b64encode(os.urandom(shift) + ntlm_message(3)).decode()
    out = redact(f"step output: {blob} end")
    assert blob not in out and "TlRMTVNTUA" not in out
    assert "[redacted: NTLM AUTHENTICATE message" in out and out.endswith(" end")


def test_a_real_ntlm_negotiate_token() -> None:
    import spnego

    token = spnego.client("user", "pass", protocol="ntlm").step()
    assert token is not None
    out = redact(f"NTLM step output: {base64.b64encode(token).decode()}")
    assert out == f"NTLM step output: [redacted: NTLM NEGOTIATE message, {len(token)} bytes]"


def test_ntlm_message_as_raw_bytes_and_hex() -> None:
    message = ntlm_message(2)
    for text in (f"got {message!r}", f"got {message.decode('latin-1')}", f"got {message.hex()}",
                 f"got {message.hex().upper()}"):
        out = redact(text)
        assert "NTLMSSP" not in out and "4e544c4d" not in out.lower(), out
        assert "[redacted: NTLM message]" in out


@pytest.mark.parametrize("text", [
    "Authorization: Negotiate TlRMTVNTUAADAAAAGAAYAFgAAACUAJQAcAAAAAYABgAEAQAA",
    "authorization: Basic bGFiXGhhcmRlbmluZzpzZWNyZXQ=",
    "{'Content-Type': 'application/soap+xml', 'Authorization': 'Basic bGFiXGhhcmRlbmluZzpzZWNyZXQ='}",
    '{"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"}',
    "Proxy-Authorization: Kerberos YIIBgAYJKoZIhvcSAQICAQBuggFvMIIBa6ADAgEFoQMCAQ6iBwMFACAAAACj",
    "authorization=Negotiate oYIBzDCCAcigAwoBAaEMBgorBgEEAYI3AgIKooIBsgSCAa4",
])
def test_authorization_headers(text: str) -> None:
    out = redact(text)
    assert "[redacted: Authorization header]" in out
    assert "Authorization:" not in out and "authorization:" not in out.lower()
    for token in ("TlRMTVNT", "bGFiXGhh", "eyJhbGci", "YIIBgAYJ", "oYIBzDCC"):
        assert token not in out


def test_www_authenticate_values() -> None:
    challenge = base64.b64encode(b"\xa1\x81\xce" + ntlm_message(2)).decode()
    out = redact(f"WWW-Authenticate: Negotiate {challenge}")
    assert out.startswith("WWW-Authenticate: Negotiate [redacted: NTLM CHALLENGE message in SPNEGO")
    assert challenge not in out
    assert redact("WWW-Authenticate: Negotiate, NTLM") == "WWW-Authenticate: Negotiate, NTLM"


@pytest.mark.parametrize(("text", "kept"), [
    ("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", "Bearer [redacted:"),
    ("kerberos YIIBgAYJKoZIhvcSAQICAQBuggFvMIIBa6ADAgEF", "kerberos [redacted: Kerberos/SPNEGO token"),
    ("sent Basic bGFiXGhhcmRlbmluZzpzZWNyZXQ= to the host", "sent Basic [redacted: user name and password] to"),
    ("CredSSP c2VjcmV0MTIzNDU2Nzg=", "CredSSP [redacted:"),
])
def test_scheme_tokens(text: str, kept: str) -> None:
    out = redact(text)
    assert kept in out and text.split()[1 if not text.startswith("sent") else 2] not in out


@pytest.mark.parametrize("text", [
    "Basic authentication is refused over plain HTTP",
    "auth negotiate (NTLM AUTHENTICATE) failed",
    "Kerberos needs the gssapi package",
])
def test_english_after_a_scheme_name_is_kept(text: str) -> None:
    assert redact(text) == text


def _encodings(secret: str) -> dict[str, str]:
    utf16 = secret.encode("utf-16-le")
    return {
        "plain": secret, "json": json.dumps(secret)[1:-1], "repr": repr(secret)[1:-1],
        "url": quote(secret, safe=""),
        "xml": secret.replace("&", "&amp;").replace('"', "&quot;").replace("'", "&#x27;"),
        "powershell": secret.replace("'", "''"), "utf-8 bytes": repr(secret.encode())[2:-1],
        "utf-16 bytes": repr(utf16)[2:-1], "utf-16 hex": utf16.hex(), "utf-8 hex": secret.encode().hex().upper(),
    }


@pytest.mark.parametrize("encoding", list(_encodings(SECRET)))
def test_known_secret_in_each_encoding(encoding: str) -> None:
    form = _encodings(SECRET)[encoding]
    out = redact(f"value <{form}> end", SECRET)
    assert out == "value <[redacted: secret]> end", (encoding, out)


@pytest.mark.parametrize("prefix", ["", "u", "us", "lab\\hardening:"])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-16-le"])
def test_known_secret_in_base64_at_any_alignment(prefix: str, encoding: str) -> None:
    data = (prefix + SECRET + "!").encode(encoding)
    for blob in (base64.b64encode(data).decode(), base64.urlsafe_b64encode(data).decode()):
        out = redact(f"x {blob} y", SECRET)
        assert out == "x [redacted: secret] y", (prefix, encoding, out)


def test_base64_cores_are_what_the_secret_encodes_to_anywhere() -> None:
    data = b"abcdefghij"
    cores = base64_cores(data)
    for shift in range(3):
        for tail in (b"", b"Z", b"ZZ"):
            assert any(c in base64.b64encode(b"\x01" * shift + data + tail).decode() for c in cores)


def test_long_base64_data() -> None:
    blob = base64.b64encode(os.urandom(60)).decode()
    assert redact(f"payload {blob}") == f"payload [redacted: base64 data, {len(blob)} characters]"
    digest = "sha256:" + "0123456789abcdef" * 4  # hex, one case: not base64 data
    assert redact(digest) == digest


def test_wsman_envelopes_psrp_objects_and_clixml() -> None:
    envelope = ('<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope">'
                "<s:Header><wsa:Action>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Send</wsa:Action>"
                "</s:Header><s:Body><rsp:Stream>AAAAAAAAAAEAAAAAAAAAAAMAAADKAgAAAAIAAQDPFq4</rsp:Stream></s:Body>"
                "</s:Envelope>")
    assert redact(f"sent {envelope} ok") == f"sent [redacted: WS-Man Send envelope, {len(envelope)} characters] ok"
    truncated = envelope[:120]
    assert redact(truncated) == f"[redacted: WS-Man envelope, {len(truncated)} characters]"
    psrp = '<Obj RefId="0"><MS><S N="Value">$Desired = secret</S></MS></Obj>'
    assert redact(f"message: {psrp}") == f"message: [redacted: PSRP object, {len(psrp)} characters]"
    clixml = '#< CLIXML\r\n<Objs Version="1.1.0.1"><S S="Error">boom</S></Objs>'
    assert redact(clixml) == f"[redacted: CLIXML, {len(clixml)} characters]"


def test_the_json_literal_of_a_bundle_call() -> None:
    literal = """'{"id":"c1","n":0,"data":{"path":"C:\\\\it''s"}}'"""
    script = f"$Call = ConvertFrom-Json -InputObject {literal}\n$Desired = $Call.data"
    out = redact(script)
    assert out == (f"$Call = ConvertFrom-Json -InputObject [redacted: JSON literal, {len(literal)} characters]\n"
                   "$Desired = $Call.data")


def test_encoded_command() -> None:
    out = redact("powershell.exe -NoProfile -EncodedCommand JABFAHIAcgBvAHIA")
    assert out == "powershell.exe -NoProfile -EncodedCommand [redacted: 16 characters]"


def test_user_information_in_urls() -> None:
    assert redact("GET https://user:pa55@hooks.example.com/x") == \
        "GET https://[redacted: user information]@hooks.example.com/x"


@pytest.mark.parametrize(("text", "out"), [
    ("password=hunter2 next", "password=[redacted] next"),
    ('{"token": "abc123", "n": 1}', '{"token": "[redacted]", "n": 1}'),
    ("'Password': 'x y', 'n': 1", "'Password': '[redacted]', 'n': 1"),
    ("api_key: 0123", "api_key: [redacted]"),
    ("the password file is mode 0600", "the password file is mode 0600"),
])
def test_key_value_secrets(text: str, out: str) -> None:
    assert redact(text) == out


def test_redact_text_without_a_filter() -> None:
    assert redact_text("Authorization: Basic dXNlcjpwYXNzd29yZA==") == "[redacted: Authorization header]"


# -- third-party message forms ------------------------------------------------------------------------


def test_known_forms_summarise_their_payloads() -> None:
    token = base64.b64encode(ntlm_message(1)).decode()
    assert known_form("spnego._ntlm", f"NTLM step output: {token}") == \
        "NTLM step output: [redacted: NTLM NEGOTIATE message, 76 bytes]"
    assert known_form("spnego._ntlm", "NTLM step input: ") == "NTLM step input: "
    assert known_form("pypsrp.messages", 'Packing PSRP message: <Obj RefId="0"/>') == \
        "Packing PSRP message: [redacted: PSRP message, 16 characters]"
    assert known_form("urllib3.connectionpool", 'https://h:443 "POST /hook?token=abc HTTP/1.1" 200 12') == \
        'https://h:443 "POST /hook?[redacted: query, 9 characters] HTTP/1.1" 200 12'
    assert known_form("pypsrp.powershell", "Received PipelineState with state: 4") == \
        "Received PipelineState with state: 4"
    # the form is matched whole: a known start followed by more is not that form
    assert known_form("pypsrp.powershell", "Received PipelineState with state: 4 and <Obj>") is None
    assert known_form("pypsrp.unknown", "Received PipelineState with state: 4") is None
    assert known_form("some.library", "anything") is None


def test_summarise_token_names_what_it_hides() -> None:
    assert summarise_token("") == ""
    assert summarise_token("Negotiate") == "Negotiate"
    assert summarise_token("Basic dXNlcjpwYXNz") == "Basic [redacted: user name and password]"
    assert summarise_token("not base64 ÿ") == "[redacted: token, 12 characters]"


# -- the filter -------------------------------------------------------------------------------------


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """A handler on the root logger with a LogRedaction (the secret known), at DEBUG; removed after."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    install_log_redaction(handler, secrets=[SECRET])
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def test_unknown_third_party_debug_is_replaced_warning_is_scrubbed(stream: io.StringIO) -> None:
    log = logging.getLogger("pypsrp.wsman")
    log.debug("Something new: %s", "$Desired = {'path': 'C:\\x'}")
    log.warning("Retrying: %s", f"Authorization: Basic {base64.b64encode(SECRET.encode()).decode()}")
    lines = stream.getvalue().splitlines()
    assert lines == ["DEBUG pypsrp.wsman: [redacted: a DEBUG message of 42 characters in a form not known to be safe]",
                     "WARNING pypsrp.wsman: Retrying: [redacted: Authorization header]"]


def test_a_propagating_child_logger_is_filtered(stream: io.StringIO) -> None:
    child = logging.getLogger("spnego._ntlm.child.of.its.own")
    assert child.propagate
    child.debug("NTLM step output: %s", base64.b64encode(ntlm_message(3)).decode())
    assert stream.getvalue() == "DEBUG spnego._ntlm.child.of.its.own: NTLM step output: [redacted: NTLM AUTHENTICATE " \
                                "message, 76 bytes]\n"


def test_args_carrying_the_secret(stream: io.StringIO) -> None:
    log = logging.getLogger("hardening.test")
    log.info("connecting with %s and %r", SECRET, {"password": SECRET})
    log.info("mapping %(value)s", {"value": SECRET})
    text = stream.getvalue()
    assert SECRET not in text and json.dumps(SECRET)[1:-1] not in text and repr(SECRET)[1:-1] not in text
    assert text.count("[redacted") == 3


def test_the_record_keeps_nothing_raw(stream: io.StringIO) -> None:
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    keep = Keep()
    install_log_redaction(keep, secrets=[SECRET])
    logging.getLogger().addHandler(keep)
    try:
        try:
            raise ValueError(f"bad value {SECRET}")
        except ValueError:
            logging.getLogger("hardening.test").exception("failed for %s", SECRET, stack_info=True)
    finally:
        logging.getLogger().removeHandler(keep)
    [record] = seen
    assert record.args == () and record.exc_info is None
    assert SECRET not in str(record.msg) and SECRET not in (record.exc_text or "")
    assert SECRET not in (record.stack_info or "")
    assert "ValueError: bad value [redacted: secret]" in (record.exc_text or "")
    assert SECRET not in stream.getvalue() and "ValueError: bad value [redacted: secret]" in stream.getvalue()


def test_a_message_that_is_not_a_string_and_bad_arguments(stream: io.StringIO) -> None:
    logging.getLogger("hardening.test").error(ValueError(f"no {SECRET}"))
    logging.getLogger("hardening.test").error("count %d", SECRET)
    text = stream.getvalue()
    assert SECRET not in text
    assert "no [redacted: secret]" in text and "count %d [its arguments could not be formatted" in text


def test_a_logger_with_its_own_handler_that_does_not_propagate() -> None:
    out = io.StringIO()
    own = logging.getLogger("urllib3.private.test")
    handler = logging.StreamHandler(out)
    own.addHandler(handler)
    own.propagate = False
    own.setLevel(logging.DEBUG)
    try:
        redaction = install_log_redaction()  # every handler now configured, this one too
        assert redaction in handler.filters
        own.debug("token %s", base64.b64encode(ntlm_message(3)).decode())
    finally:
        own.removeHandler(handler)
        handler.removeFilter(redaction)
        own.propagate = True
    assert "TlRMTVNTUA" not in out.getvalue() and "not known to be safe" in out.getvalue()


def test_secrets_resolved_later_are_scrubbed_from_then_on(stream: io.StringIO) -> None:
    late = "Late-Secret-51c0"
    log = logging.getLogger("hardening.test")
    log.info("before %s", late)
    register_secret(late)
    log.info("after %s", late)
    assert stream.getvalue().splitlines() == ["INFO hardening.test: before Late-Secret-51c0",
                                              "INFO hardening.test: after [redacted: secret]"]


def test_register_secret_without_a_filter_does_nothing() -> None:
    register_secret("Nobody-Listens-1")  # must not fail, keep or log anything
    register_secret(None)
    register_secret("")


def test_two_filters_on_two_handlers() -> None:
    first, second = io.StringIO(), io.StringIO()
    one, two = logging.StreamHandler(first), logging.StreamHandler(second)
    one.addFilter(LogRedaction(["first-secret-1"]))
    two.addFilter(LogRedaction(["second-secret-2"]))
    log = logging.getLogger("hardening.test.two")
    log.addHandler(one)
    log.addHandler(two)
    log.setLevel(logging.DEBUG)
    try:
        log.debug("first-secret-1 second-secret-2")
    finally:
        log.removeHandler(one)
        log.removeHandler(two)
    # the first filter rewrote the record; the second adds its own secret and keeps the rest
    assert first.getvalue() == "[redacted: secret] second-secret-2\n"
    assert second.getvalue() == "[redacted: secret] [redacted: secret]\n"


def test_install_twice_keeps_one_filter() -> None:
    handler = logging.StreamHandler(io.StringIO())
    first = install_log_redaction(handler)
    second = install_log_redaction(handler, secrets=["x-secret-9"])
    assert first is second and len(handler.filters) == 1
    assert first.redact("x-secret-9") == "[redacted: secret]"
