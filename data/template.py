"""The template of a message: what stays the same across one campaign's variants.

    python -m data.template "【ETC服务】您的ETC认证已失效，请点击 etc-renz.cn 重新认证，客服4008123456"

Scam SMS come in campaigns: one script sent to thousands of numbers with the names, amounts,
links, phone numbers and order ids changed. `template(normalized)` masks exactly those parts
of an already-normalized text (the artifact's normalization, data/normalize.py, so that disguised
copies of a script meet the same template), then drops spaces and punctuation:

| part | example | becomes |
| --- | --- | --- |
| URL, bare domain, e-mail | https://etc-renz.cn/a?b=1, etc-renz.cn, a@b.cn | `U` |
| phone number (7+ digits, separators allowed, masked digits too) | 400-812-3456, 138****5678 | `P` |
| id mixing letters and digits | a8f3k2, no.2024x11 | `I` |
| any other digit run (amounts, codes, dates) | 256.00, 482913, 11月3日 -> `D`月`D`日 | `D` |

The placeholders are upper-case ASCII letters, which a normalized (lower-cased) text never
holds. `shingles(t)` are the template's character n-grams, what serving/feedback matches with
MinHash; a template shorter than `min_shingle_chars` is matched by its exact hash instead.
"""
from __future__ import annotations

import hashlib
import re
import sys

URL, PHONE, ID, DIGITS = "U", "P", "I", "D"
TEMPLATE_VERSION = "1"  # bump when a change here changes any template (stored indexes are rebuilt)

_URL_CHARS = r"[a-z0-9\-._~:/?#@!$&'*+;=%]"  # ASCII URL characters, without the comma (a clause ends there)
_URL = re.compile(r"(?:https?://|www\.)" + _URL_CHARS + "+"
                  r"|[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)+"
                  r"|(?<![a-z0-9-])(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]"
                  r"(?:/" + _URL_CHARS + "*)?(?![a-z0-9-])")
# 7+ digits, allowing - / space / * masks between them: 400-812-3456, +86 138 1234 5678, 138****5678,
# and the audit log's masks of cards and ids (serving/audit.py: ***************0123, **************002X)
_PHONE = re.compile(r"\+?(?<![\d*])(?=[\d*]*\d)[\d*](?:[\d*]|[- ](?=\d)){6,}(?![\d*])(?:(?<=\d)x(?![a-z0-9]))?")
_ID = re.compile(r"(?<![a-z0-9])(?=[a-z0-9]*\d)(?=[a-z0-9]*[a-z])[a-z0-9]{4,}(?![a-z0-9])")
_DIGITS = re.compile(r"\d+(?:[.,:*]\d+)*")
_DROP = re.compile(r"[\W_]+")  # spaces, punctuation, symbols: not part of a campaign's wording


def template(normalized: str) -> str:
    """The campaign template of a normalized text (see the module docstring)."""
    t = _URL.sub(URL, normalized)
    t = _PHONE.sub(PHONE, t)
    t = _ID.sub(ID, t)
    t = _DIGITS.sub(DIGITS, t)
    return _DROP.sub("", t)


def template_hash(t: str) -> str:
    """A short, stable hash of a template (the exact-match key)."""
    return hashlib.blake2b(t.encode("utf-8"), digest_size=12).hexdigest()


def shingles(t: str, n: int = 3) -> list[bytes]:
    """The template's distinct character n-grams (UTF-32 encoded: 4 bytes a character, so
    slicing the encoded text once is the n-grams' encoding), what MinHash hashes."""
    raw = t.encode("utf-32-le")
    if len(t) <= n:
        return [raw]
    step, width = 4, 4 * n
    return list({raw[i:i + width] for i in range(0, len(raw) - width + step, step)})


def main(argv=None) -> int:
    from data.normalize import normalize

    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m data.template TEXT [TEXT ...]", file=sys.stderr)
        return 2
    for text in args:
        t = template(normalize(text))
        print(f"{template_hash(t)}  {t}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
