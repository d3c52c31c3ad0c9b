#!/usr/bin/env python3
"""Verifies a Tally audit bundle without Tally: Python's standard library only.

    python3 tools/verify-bundle.py BUNDLE [--key VERIFIER_KEY]

Written from the bundle's FORMAT.md (and C2SP signed-note / tlog-checkpoint, RFC 9162, RFC 8032),
not from Tally's Swift code, so an auditor need not trust that code. Exits 0 and prints "verified"
when every event, checkpoint and proof checks out; otherwise exits 1 naming the first problem.
"""
import base64
import hashlib
import json
import os
import sys


class Failure(Exception):
    pass


# ---- Ed25519 verification (RFC 8032, section 5.1.7), on the curve's extended coordinates ----

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _add(a, b):
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % P
    bb = (y1 + x1) * (y2 + x2) % P
    cc = 2 * t1 * t2 * D % P
    dd = 2 * z1 * z2 % P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _multiply(scalar, point):
    result = (0, 1, 1, 0)
    while scalar > 0:
        if scalar & 1:
            result = _add(result, point)
        point = _add(point, point)
        scalar >>= 1
    return result


def _equal(a, b):
    x1, y1, z1, _ = a
    x2, y2, z2, _ = b
    return (x1 * z2 - x2 * z1) % P == 0 and (y1 * z2 - y2 * z1) % P == 0


def _decompress(data):
    if len(data) != 32:
        return None
    y = int.from_bytes(data, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        if sign:
            return None
        x = 0
    else:
        x = pow(x2, (P + 3) // 8, P)
        if (x * x - x2) % P != 0:
            x = x * SQRT_M1 % P
        if (x * x - x2) % P != 0:
            return None
        if (x & 1) != sign:
            x = P - x
    return (x, y, 1, x * y % P)


BASE = _decompress((4 * pow(5, P - 2, P) % P).to_bytes(32, "little"))


def ed25519_verify(public, message, signature):
    if len(signature) != 64:
        return False
    a = _decompress(public)
    r = _decompress(signature[:32])
    if a is None or r is None:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= L:
        return False
    k = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little") % L
    return _equal(_multiply(s, BASE), _add(r, _multiply(k, a)))


# ---- Keys and signed notes (C2SP signed-note) ----

def parse_verifier_key(text):
    parts = text.strip().split("+", 2)
    if len(parts) != 3 or not parts[0] or len(parts[1]) != 8:
        raise Failure("verifier key is not name+keyid+base64")
    name, key_id_hex, encoded = parts
    key = base64.b64decode(encoded, validate=True)
    if len(key) != 33 or key[0] != 1:
        raise Failure("verifier key is not an Ed25519 key")
    key_id = hashlib.sha256(name.encode() + b"\n" + key).digest()[:4]
    if key_id.hex() != key_id_hex:
        raise Failure("verifier key id does not match its name and key")
    return name, key_id, key[1:]


def verify_note(data, key):
    name, key_id, public = key
    text_all = data.decode("utf-8")
    split = text_all.rfind("\n\n")
    if split < 0:
        raise Failure("note has no blank line before its signatures")
    text = text_all[: split + 1]
    for line in text_all[split + 2 :].split("\n")[:-1]:
        if not line.startswith("\u2014 "):
            raise Failure("malformed signature line")
        signer, _, value = line[2:].partition(" ")
        raw = base64.b64decode(value, validate=True)
        if signer == name and raw[:4] == key_id and ed25519_verify(public, text.encode(), raw[4:]):
            return text
    raise Failure("no valid signature by " + name)


def parse_checkpoint(text, origin):
    lines = text[:-1].split("\n")
    if len(lines) < 3 or lines[0] != origin or str(int(lines[1])) != lines[1]:
        raise Failure("checkpoint is not for origin " + origin)
    root = base64.b64decode(lines[2], validate=True)
    if len(root) != 32:
        raise Failure("checkpoint root is not 32 bytes")
    return int(lines[1]), root


# ---- RFC 9162 ----

def node(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


class Frontier:
    """The compact range of a growing tree: one subtree root per set bit of the size."""

    def __init__(self):
        self.size = 0
        self.stack = []  # (height, hash), highest first

    def append(self, leaf):
        height, current = 0, leaf
        while self.stack and self.stack[-1][0] == height:
            current = node(self.stack.pop()[1], current)
            height += 1
        self.stack.append((height, current))
        self.size += 1

    def root(self):
        if not self.stack:
            return hashlib.sha256(b"").digest()
        current = self.stack[-1][1]
        for _, left in reversed(self.stack[:-1]):
            current = node(left, current)
        return current


def verify_consistency(first, second, path, first_root, second_root):
    """RFC 9162, section 2.1.4.2."""
    if first == second:
        return not path and first_root == second_root
    if first == 0 or first > second or not path:
        return False
    if first & (first - 1) == 0:
        path = [first_root] + path
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node(c, fr)
            sr = node(c, sr)
            while not (fn & 1) and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root


# ---- Records ----

def varint(data, offset):
    value, shift = 0, 0
    while True:
        if offset >= len(data) or shift > 63:
            raise Failure("truncated varint")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, offset
        shift += 7


def minimal_varint(data, offset, limit, what):
    start = offset
    value, offset = varint(data, offset)
    if offset - start > 1 and data[offset - 1] == 0:
        raise Failure("the %s is not minimally encoded" % what)
    if value > limit:
        raise Failure("the %s is %d, over the limit of %d" % (what, value, limit))
    return value, offset


def parse_record(record):
    """Returns the record's fields and checks its layout. Format 2 has the schema version and the stream
    version as varints; format 1 (stores written before format 2) as u16 and u64."""
    if len(record) < 2 + 2 + 8 + 16 + 5 + 32 or record[0] not in (1, 2):
        raise Failure("not a format 1 or 2 record")
    fmt, flags = record[0], record[1]
    if flags & ~3:
        raise Failure("unknown flags %d" % flags)
    if fmt == 2:
        schema, offset = minimal_varint(record, 2, 0xFFFF, "schema version")
        version, offset = minimal_varint(record, offset, 0xFFFFFFFF, "stream version")
    else:
        schema = int.from_bytes(record[2:4], "little")
        version = int.from_bytes(record[4:12], "little")
        offset = 12
    if schema < 1 or version < 1:
        raise Failure("schema version and stream version start at 1")
    recorded_at, event_id = record[offset : offset + 8], record[offset + 8 : offset + 24]
    offset += 24
    body_start, body_end = offset, len(record) - 32
    fields = []
    for _ in range(3):  # stream, type, actor
        length, offset = varint(record, offset)
        fields.append(record[offset : offset + length])
        offset += length
    offset += 16 * ((flags & 1) + ((flags >> 1) & 1))
    length, offset = varint(record, offset)  # metadata
    offset += length
    length, offset = varint(record, offset)  # payload
    payload = record[offset : offset + length]
    offset += length
    if offset != body_end:
        raise Failure("record body does not end where its hash starts")
    return {
        "stream": fields[0].decode(), "type": fields[1].decode(), "payload": payload.decode(),
        "envelope": bytes([fmt, flags]) + schema.to_bytes(2, "little"), "version": version,
        "recorded_at": recorded_at, "id": event_id, "body": record[body_start:body_end],
    }


def leaf_hash(fields, position, previous):
    """The same 109 bytes for both formats: 0x00, format, flags, schema version (u16), position (u64),
    stream version (u64), recorded at (i64), event id, SHA-256(body), previous leaf hash."""
    return hashlib.sha256(
        b"\x00" + fields["envelope"] + position.to_bytes(8, "little") + fields["version"].to_bytes(8, "little")
        + fields["recorded_at"] + fields["id"] + hashlib.sha256(fields["body"]).digest() + previous
    ).digest()


def verify(bundle, trusted_key_text=None):
    def read(name):
        if ".." in name.split("/"):
            raise Failure("path outside the bundle: " + name)
        with open(os.path.join(bundle, name), "rb") as handle:
            return handle.read()

    manifest = json.loads(read("manifest.json"))
    if manifest.get("format") != "tally-audit-bundle" or manifest.get("version") != 1:
        raise Failure("not a tally-audit-bundle version 1")
    origin, count = manifest["origin"], manifest["events"]
    bundle_key = read("verifier.key").decode().strip()
    if trusted_key_text is not None and trusted_key_text.strip() != bundle_key:
        raise Failure("the bundle's verifier.key is not the key you trust")
    key = parse_verifier_key(trusted_key_text or bundle_key)

    checkpoints = {}
    for name in manifest["checkpoints"]:
        size, root = parse_checkpoint(verify_note(read(name), key), origin)
        if size > count:
            raise Failure(name + " covers more events than the bundle holds")
        checkpoints[size] = root
    if not checkpoints:
        raise Failure("no checkpoint")

    frontier, previous = Frontier(), bytes(32)
    if 0 in checkpoints and checkpoints[0] != frontier.root():
        raise Failure("checkpoint of size 0 has the wrong root")
    with open(os.path.join(bundle, "events.jsonl"), "rb") as lines:
        for expected, line in enumerate(lines, start=1):
            event = json.loads(line)
            if event["position"] != expected:
                raise Failure("position %d where %d should be: an event was removed or reordered" % (event["position"], expected))
            record = base64.b64decode(event["record"], validate=True)
            fields = parse_record(record)
            leaf = leaf_hash(fields, expected, previous)
            if leaf != record[-32:]:
                raise Failure("position %d: its bytes do not give the hash it carries: the event was altered" % expected)
            if (event["stream"], event["type"], event["payload"]) != (fields["stream"], fields["type"], fields["payload"]):
                raise Failure("position %d: the readable fields differ from the record" % expected)
            frontier.append(leaf)
            previous = leaf
            root = checkpoints.get(frontier.size)
            if root is not None and root != frontier.root():
                raise Failure("the first %d events do not have the root the checkpoint signs" % frontier.size)
    if frontier.size != count:
        raise Failure("events.jsonl holds %d events, the manifest says %d" % (frontier.size, count))

    for name in manifest["consistencyProofs"]:
        lines = read(name).decode().split("\n")
        if lines[0] != "tally consistency proof v1" or lines[1] != "origin " + origin:
            raise Failure(name + " is not a consistency proof for " + origin)
        old, new = int(lines[2].split(" ")[1]), int(lines[3].split(" ")[1])
        path = [base64.b64decode(line[5:], validate=True) for line in lines[4:] if line]
        if old not in checkpoints or new not in checkpoints:
            raise Failure(name + " is between sizes with no checkpoint")
        if old != 0 and not verify_consistency(old, new, path, checkpoints[old], checkpoints[new]):
            raise Failure(name + " does not verify")
    return count, len(checkpoints)


def main(arguments):
    if not arguments or arguments[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if arguments else 2
    key = None
    if "--key" in arguments:
        index = arguments.index("--key")
        key = arguments[index + 1]
        if os.path.exists(key):
            with open(key) as handle:
                key = handle.read()
        del arguments[index : index + 2]
    try:
        count, checkpoints = verify(arguments[0], key)
    except (Failure, ValueError, KeyError, TypeError, IndexError, OSError, UnicodeDecodeError) as error:
        print("error: bundle does not verify: %s" % error, file=sys.stderr)
        return 1
    print("verified: %d event%s, %d signed checkpoint%s, every proof" % (count, "" if count == 1 else "s", checkpoints, "" if checkpoints == 1 else "s"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
