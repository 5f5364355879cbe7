"""RFC 9421 HTTP Message Signatures: ``Signature-Input`` and ``Signature``.

Component values and the signature base (§2), verification and signing (§3),
and ``Accept-Signature`` (§5.1, :func:`parse_accept_signature`, re-exported by
:mod:`federation.signatures`). Called through :mod:`federation.signatures`,
which documents the policy.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl, quote

import http_sf
from cryptography.hazmat.primitives.asymmetric import ed25519

from federation.digests import _check_content_digest, content_digest
from federation.keys import PrivateKey, PublicKey
from federation.signature_algorithms import _algorithms_for, _sign_raw, _verify_raw
from federation.signature_types import (
    _MAX_HEADER_CHARS,
    Reason,
    Scheme,
    SignatureRequest,
    Verdict,
    _add_signed_headers,
    _check_time,
    _covered_fields,
    _Failure,
    _Request,
)
from federation.structured_fields import (
    _members,
    _parsed_dictionary,
    _ser_item,
    serialize_dictionary,
)

_REQUEST_DERIVED: dict[str, Callable[[_Request], str]] = {
    "@method": lambda r: r.method,
    "@target-uri": lambda r: r.target_uri,
    "@authority": lambda r: r.authority,
    "@scheme": lambda r: r.url.scheme.lower(),
    # RFC 9421's @request-target has no method prefix (unlike cavage's); Fedify's
    # own implementation gets this wrong, but its default components skip it.
    "@request-target": lambda r: r.path_and_query,
    "@path": lambda r: r.path,
    "@query": lambda r: f"?{r.url.query}",
}


def _parse_dictionary(req: _Request, name: str) -> dict[str, tuple[Any, dict[str, Any]]]:
    value = req.field(name)
    if value is None:
        return {}
    if len(value) > _MAX_HEADER_CHARS:
        raise _Failure(Reason.MALFORMED, f"{name} header too long")
    members = _parsed_dictionary(value)
    if members is None:
        raise _Failure(Reason.MALFORMED, f"{name} is not a structured dictionary")
    return dict(members)


def _pick_label(req: _Request, label: str | None) -> tuple[str, Any, dict[str, Any], Any]:
    inputs = _parse_dictionary(req, "signature-input")
    signatures = _parse_dictionary(req, "signature")
    labels = [label] if label is not None else [name for name in inputs if name in signatures]
    if not labels or labels[0] not in inputs or labels[0] not in signatures:
        raise _Failure(Reason.MALFORMED, "no Signature-Input member with a matching Signature")
    chosen = labels[0]
    items, params = inputs[chosen]
    if not isinstance(items, list):
        raise _Failure(Reason.MALFORMED, "Signature-Input member is not an inner list")
    return chosen, items, params, signatures[chosen][0]


def _component_value(req: _Request, name: str, params: dict[str, Any]) -> str:
    if name.startswith("@"):
        if name == "@query-param" and set(params) == {"name"}:
            return _query_param(req, str(params["name"]))
        derived = _REQUEST_DERIVED.get(name)
        if derived is None or params:
            raise _Failure(Reason.MALFORMED, f"component {name!r} is not supported here")
        return derived(req)
    if name != name.lower() or not name:
        raise _Failure(Reason.MALFORMED, f"component {name!r} must be lower case")
    value = req.field(name)
    if value is None:
        raise _Failure(Reason.MISSING_HEADER, f"covered header {name!r} is absent")
    if not params:
        return value
    if set(params) == {"sf"} and params["sf"] is True:
        try:
            return http_sf.ser(http_sf.parse(value.encode("ascii"), name=name))
        except Exception:
            raise _Failure(Reason.MALFORMED, f"{name!r} is not a known structured field") from None
    if set(params) == {"key"}:
        try:
            parsed = http_sf.parse(value.encode("ascii"), tltype="dictionary")
            assert isinstance(parsed, dict)  # for the type checker: tltype="dictionary"
            return http_sf.ser([parsed[str(params["key"])]])
        except Exception:
            raise _Failure(Reason.MISSING_HEADER, f"{name!r} lacks {params['key']!r}") from None
    if set(params) == {"bs"} and params["bs"] is True:
        encoded = (base64.b64encode(line.strip(" \t").encode()) for line in req.headers[name])
        return ", ".join(f":{line.decode()}:" for line in encoded)
    raise _Failure(Reason.MALFORMED, f"component parameters {sorted(params)} are not supported")


def _query_param(req: _Request, name: str) -> str:
    # RFC 9421 §2.2.8: names and values are form-decoded, then percent-encoded.
    pairs = parse_qsl(req.url.query, keep_blank_values=True)
    values = [v for k, v in pairs if quote(k, safe="") == name]
    if len(values) != 1:
        raise _Failure(Reason.MISSING_HEADER, f"query parameter {name!r} absent or repeated")
    return quote(values[0], safe="")


def _signature_base(
    req: _Request, items: Sequence[Any], label: str, params: dict[str, Any]
) -> bytes:
    lines = []
    seen: set[str] = set()
    for item in items:
        name, item_params = item if isinstance(item, tuple) else (item, {})
        if not isinstance(name, str) or isinstance(name, http_sf.Token):
            raise _Failure(Reason.MALFORMED, "component identifiers must be strings")
        identifier = _ser_item(name, item_params)
        if identifier in seen or name == "@signature-params":
            raise _Failure(Reason.MALFORMED, f"component {identifier} repeated or reserved")
        seen.add(identifier)
        value = _component_value(req, name, item_params)
        if "\n" in value or "\r" in value:
            raise _Failure(Reason.MALFORMED, f"component {identifier} contains a newline")
        lines.append(f"{identifier}: {value}")
    signature_params = _ser_item(list(items), params)
    lines.append(f'"@signature-params": {signature_params}')
    return "\n".join(lines).encode("utf-8")


def _verify_rfc9421(
    req: _Request,
    key: PublicKey | None,
    now: float,
    window_s: float,
    require_body_digest: bool,
    label: str | None,
) -> Verdict:
    key_id: str | None = None
    algorithm: str | None = None
    try:
        chosen, items, params, signature = _pick_label(req, label)
        key_id = params.get("keyid") if isinstance(params.get("keyid"), str) else None
        algorithm = params.get("alg") if isinstance(params.get("alg"), str) else None
        if key_id is None:
            raise _Failure(Reason.MALFORMED, "keyid parameter is required")
        if not isinstance(signature, bytes):
            raise _Failure(Reason.MALFORMED, "Signature member is not a byte sequence")
        names = {item[0] if isinstance(item, tuple) else item for item in items}
        _require_rfc9421_components(names, req, require_body_digest)
        created = params.get("created")
        if not isinstance(created, int) or isinstance(created, bool):
            raise _Failure(Reason.MALFORMED, "created parameter is required")
        _check_time(float(created), now, window_s, "created")
        expires = params.get("expires")
        if isinstance(expires, int) and not isinstance(expires, bool) and expires < now:
            raise _Failure(Reason.EXPIRED, "signature expired")
        digest_value = req.field("content-digest")
        if "content-digest" in names and digest_value is None:
            raise _Failure(Reason.DIGEST_MISSING, "content-digest is signed but absent")
        if digest_value is not None:
            _check_content_digest(digest_value, req.body or b"")
        if key is None:
            raise _Failure(Reason.KEY_UNAVAILABLE, "no public key for this keyid")
        candidates = _algorithms_for(algorithm, key, Scheme.RFC9421)
        base = _signature_base(req, items, chosen, params)
        for alg in candidates:
            if _verify_raw(key, alg, signature, base):
                return Verdict(True, Reason.OK, key_id, Scheme.RFC9421, alg.value)
        raise _Failure(Reason.BAD_SIGNATURE, "signature does not verify")
    except _Failure as failure:
        return Verdict(False, failure.reason, key_id, Scheme.RFC9421, algorithm, failure.detail)


def _require_rfc9421_components(names: set[Any], req: _Request, require_body_digest: bool) -> None:
    if "@method" not in names:
        raise _Failure(Reason.MISSING_COMPONENT, "@method must be signed")
    covers_path = bool(names & {"@path", "@request-target"})
    covers_host = bool(names & {"@authority", "host"})
    if "@target-uri" not in names and not (covers_path and covers_host):
        raise _Failure(
            Reason.MISSING_COMPONENT, "@target-uri (or @authority and @path) must be signed"
        )
    if req.body and require_body_digest and "content-digest" not in names:
        raise _Failure(Reason.MISSING_COMPONENT, "content-digest must be signed with a body")


def _sign_rfc9421(
    req: _Request,
    key_id: str,
    private_key: PrivateKey,
    now: float,
    accept: SignatureRequest | None,
) -> dict[str, str]:
    added, has_body = _add_signed_headers(req, now, "Content-Digest", content_digest)
    alg = "ed25519" if isinstance(private_key, ed25519.Ed25519PrivateKey) else "rsa-v1_5-sha256"
    label = "sig1"
    if accept is not None:
        if accept.alg is not None and accept.alg != alg:
            raise ValueError(f"server asks for {accept.alg!r} but the key signs {alg!r}")
        label, components = accept.label, list(accept.components)
    else:
        components = [
            "@method", "@target-uri", "@authority",
            *_covered_fields(req, has_body, "content-digest"),
        ]  # fmt: skip
    params: dict[str, Any] = {"created": int(now), "keyid": key_id, "alg": alg}
    if accept is not None:
        if accept.expires:
            params["expires"] = int(now) + 300
        if accept.nonce is not None:
            params["nonce"] = accept.nonce
        if accept.tag is not None:
            params["tag"] = accept.tag
    items: list[tuple[str, dict[str, Any]]] = [(name, {}) for name in components]
    try:
        base = _signature_base(req, items, label, params)
    except _Failure as failure:
        raise ValueError(f"cannot sign: {failure.detail}") from None
    signature = _sign_raw(private_key, base)
    added["Signature-Input"] = serialize_dictionary({label: (items, params)})
    added["Signature"] = serialize_dictionary({label: (signature, {})})
    return added


def parse_accept_signature(value: str) -> list[SignatureRequest]:
    """Parse an ``Accept-Signature`` header (RFC 9421 §5.1) into signing requests.

    Members that are not inner lists of plain component names (for example ones
    asking for ``;sf`` or ``;key`` variants) are skipped: we cannot honour them.
    A requested ``keyid`` is only reported; choosing the key is the caller's job.

    Args:
        value: The header value.

    Returns:
        The requests in header order; empty when the header is garbage.
    """
    try:
        parsed = http_sf.parse(value.encode("ascii"), tltype="dictionary")
    except Exception:
        return []
    out = []
    for label, (items, params) in _members(parsed):
        if not isinstance(items, list):
            continue
        names = [i[0] if isinstance(i, tuple) and not i[1] else i for i in items]
        if not all(isinstance(n, str) and not isinstance(n, http_sf.Token) for n in names):
            continue

        def text(key: str, params: dict[str, Any] = params) -> str | None:
            item = params.get(key)
            return item if isinstance(item, str) else None

        out.append(
            SignatureRequest(
                label=label,
                components=tuple(names),
                keyid=text("keyid"),
                alg=text("alg"),
                nonce=text("nonce"),
                tag=text("tag"),
                created=params.get("created") is True,
                expires=params.get("expires") is True,
            )
        )
    return out
