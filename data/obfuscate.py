"""Disguise messages the way scammers do, for adversarial augmentation and robustness evaluation.

    python -m data.obfuscate --kind symbols "加微信领取"          # obfuscated + normalized forms
    python -m data.obfuscate --kind all --seed 3 "兼职刷单，加微信：abc123"

The product promise is that obfuscated fraud keeps >= 95% of its clean recall. Training on
disguised copies teaches the model what normalization cannot undo (generic look-alikes, emoji
at the edges); evaluating on them measures it. Disguises target the words that matter (the
variant table, `configs/variants.yaml`, plus a few call-to-action words) so that a disguised
message still reads as the same scam, and each kind mirrors one evasion seen in the wild.
Everything is drawn from the `random.Random` passed in: same seed, same output.
"""
from __future__ import annotations

import argparse
import difflib
import random
import re
import sys
from functools import lru_cache

from data.normalize import load_variants, normalize, url_spans

KINDS = ("symbols", "homophone", "lookalike", "traditional", "pinyin", "emoji", "digits",
         "spaces", "mixture")
BASE_KINDS = KINDS[:-1]
# Word-level substitutions first, then script, then insertions (which would hide the words).
_ORDER = ("homophone", "pinyin", "lookalike", "traditional", "digits", "symbols", "emoji",
          "spaces")
DEFAULT_PROBS = {kind: 0.04 for kind in BASE_KINDS} | {"mixture": 0.08}

SYMBOLS = "★*|.·☆♥✦"  # not "~": casual Chinese uses it as clause punctuation (好的~明天见)
JUNK_SYMBOLS = "★·☆♥✦"  # also meaningless between Latin letters, unlike * | .
EMOJI = ("❤️", "💰", "🔥", "✅", "👉", "🎁", "⭐", "🌹", "💥", "✨", "💯", "🧧")
DIGIT_STYLES = ("⓪①②③④⑤⑥⑦⑧⑨", "⓿❶❷❸❹❺❻❼❽❾", "０⑴⑵⑶⑷⑸⑹⑺⑻⑼", "０⒈⒉⒊⒋⒌⒍⒎⒏⒐",
                "０１２３４５６７８９", "⓪⓵⓶⓷⓸⓹⓺⓻⓼⓽", "🄋➀➁➂➃➄➅➆➇➈", "🄌➊➋➌➍➎➏➐➑➒",
                "⓪㊀㊁㊂㊃㊄㊅㊆㊇㊈", "０㈠㈡㈢㈣㈤㈥㈦㈧㈨", "٠١٢٣٤٥٦٧٨٩", "०१२३४५६७८९")
# Call-to-action words that are not in the variant table but carry the scam.
EXTRA_KEYS = ("加微信", "加好友", "点击", "领取", "日结", "保证金", "手续费", "安全账户", "冻结",
              "解冻", "理财", "收益", "中奖", "额度", "注销", "公安", "逮捕", "征信", "赚钱")
# Generic disguises for characters outside the table (not undone by normalize: the model
# has to learn them). Homophones sound alike; look-alikes differ by a radical or stroke.
HOMOPHONES = dict(zip("钱元码卡返单金号领取冻结费保证安全利息额度借赚点击加",
                      "前圆马咔反丹今浩令娶栋洁废宝正按泉力惜鹅渡介撰典基家"))
LOOKALIKES = dict(zip("微款刷单职链码卡银账钱号利客取冻结现", "徽歀唰単耺琏玛咔锒帐銭呺俐喀耴冸洁觋"))
LATIN_LOOKALIKES = dict(zip("aeopcxyvkiVXQ", "аеорсхуνκіⅤХԚ"))
PINYIN = {"钱": "qian", "元": "yuan", "卡": "ka", "返": "fan", "领": "ling", "取": "qu", "加": "jia",
          "赚": "zhuan", "号": "hao", "码": "ma", "单": "dan", "点": "dian", "费": "fei",
          "金": "jin", "保": "bao", "证": "zheng", "安": "an", "全": "quan", "冻": "dong"}
_CJK_RUN = re.compile(r"[\u4e00-\u9fff]{2,}")


@lru_cache(maxsize=1)
def _table():
    """(span regex: table + EXTRA_KEYS, word regex: table only, canonical -> non-Latin
    variants, canonical -> Latin-bearing variants), longest first."""
    table = load_variants()

    def alternation(keys):
        return re.compile("|".join(map(re.escape, sorted(keys, key=lambda k: (-len(k), k)))), re.I)

    homo = {c: sorted(v for v in vs if not v.isascii()) for c, vs in table.variants.items()}
    # pinyin: all-Latin spellings first, then mixed ones (贷kuan) as the fallback
    latin = {c: (sorted(v for v in vs if v.isascii()),
                 sorted(v for v in vs if not v.isascii() and re.search("[a-z]", v)))
             for c, vs in table.variants.items()}
    return (alternation(set(table.variants) | set(EXTRA_KEYS)), alternation(table.variants),
            homo, latin)


def similarity(a: str, b: str) -> float:
    """Character-level similarity in [0, 1] (difflib ratio): 1.0 = identical."""
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


class Obfuscator:
    """`probs`: kind -> probability that `augment` applies it (sum <= 1; the rest: unchanged)."""

    def __init__(self, probs: dict[str, float] | None = None):
        self.probs = dict(DEFAULT_PROBS if probs is None else probs)
        unknown = set(self.probs) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown obfuscation kinds {sorted(unknown)}; known: {KINDS}")
        if any(p < 0 for p in self.probs.values()) or sum(self.probs.values()) > 1 + 1e-9:
            raise ValueError(f"probabilities must be >= 0 and sum to <= 1, got {self.probs}")

    def augment(self, text: str, rng: random.Random) -> str:
        r = rng.random()
        for kind in KINDS:
            r -= self.probs.get(kind, 0.0)
            if r < 0:
                return self.obfuscate(text, kind, rng)
        return text

    def obfuscate(self, text: str, kind: str, rng: random.Random) -> str:
        if kind == "mixture":
            chosen = set(rng.sample(BASE_KINDS, 3))
            for k in _ORDER:
                if k in chosen:
                    text = self.obfuscate(text, k, rng)
            return text
        if kind not in BASE_KINDS:
            raise ValueError(f"unknown obfuscation kind {kind!r}; known: {KINDS}")
        if kind == "traditional":
            return _s2t()(text)
        if kind == "digits":
            return _digits(text, rng)
        if kind in ("homophone", "pinyin", "lookalike"):
            return _words(text, kind, rng)
        return _insert(text, kind, rng)


@lru_cache(maxsize=1)
def _s2t():
    import opencc  # the same C++ binding normalize uses for t2s

    return opencc.OpenCC("s2t").convert


def _free(text: str) -> list[bool]:
    """Per character: may it be rewritten (False inside URLs / e-mail addresses)?"""
    free = [True] * len(text)
    for a, b in url_spans(text):
        free[a:b] = [False] * (b - a)
    return free


def _spans(text: str, rng: random.Random) -> list[tuple[int, int]]:
    """Key spans to disguise (table words, EXTRA_KEYS); a random CJK run if there is none."""
    free = _free(text)
    spans = [m.span() for m in _table()[0].finditer(text) if all(free[m.start():m.end()])]
    if not spans:
        runs = [m.span() for m in _CJK_RUN.finditer(text)]
        if not runs:
            return []
        a, b = rng.choice(runs)
        start = rng.randrange(a, max(a + 1, b - 2))
        spans = [(start, min(b, start + rng.choice((2, 3, 4))))]
    merged: list[list[int]] = []
    for a, b in spans:  # touching spans become one: 兼职刷单 -> 兼 职 刷 单
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(b, merged[-1][1])
        else:
            merged.append([a, b])
    out = []
    for i, (a, b) in enumerate(merged):  # 2 chars grow by a CJK neighbour (收 益 三), so one
        if b - a == 2 and a > 0 and _CJK_RUN.match(text, a - 1, a + 1) and \
                (not out or out[-1][1] < a - 1):  # character stands alone: normalize undoes it
            a -= 1
        elif b - a == 2 and _CJK_RUN.match(text, b - 1, b + 1) and \
                (i + 1 == len(merged) or merged[i + 1][0] > b + 1):
            b += 1
        out.append((a, b))
    return out


def _insert(text: str, kind: str, rng: random.Random) -> str:
    spans = _spans(text, rng)
    style = rng.choice(SYMBOLS)  # scammers mostly repeat one symbol: 加★微★信
    out, pos = [], 0
    for a, b in spans:
        out.append(text[pos:a])
        for i in range(a, b - 1):
            out.append(text[i])
            # * | . next to a Latin letter could be real (a*b, v1.2): use a junk symbol there.
            mixed = text[i].isascii() != text[i + 1].isascii()
            pool = JUNK_SYMBOLS if text[i].isascii() or text[i + 1].isascii() else SYMBOLS
            if kind == "spaces":
                out.append("" if mixed else " ")  # "客服 QQ" is how people write anyway
            elif kind == "emoji":
                out.append(rng.choice(EMOJI))
            else:
                out.append(style if style in pool and rng.random() < 0.8 else rng.choice(pool))
        out.append(text[b - 1])
        pos = b
    out.append(text[pos:])
    text = "".join(out)
    if kind == "emoji" and spans and rng.random() < 0.5:  # edge decoration: left to the model
        text = text + rng.choice(EMOJI) if rng.random() < 0.5 else rng.choice(EMOJI) + text
    return text


def _digits(text: str, rng: random.Random) -> str:
    style = rng.choice(DIGIT_STYLES)
    free = _free(text)
    return "".join(style[int(ch)] if ch in "0123456789" and free[i] else ch
                   for i, ch in enumerate(text))


def _latin_edge(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


def _word(text: str, a: int, b: int, before: str, kind: str, rng: random.Random) -> str | None:
    """A disguise for the table word text[a:b] (`before`: the character now in front of it)."""
    _, _, homo, latin = _table()
    word, after = text[a:b].lower(), text[b:b + 1]
    if kind == "lookalike":
        sub = "".join(LOOKALIKES.get(c, c) if rng.random() < 0.6 else c for c in text[a:b])
        return sub if sub != text[a:b] else None
    if kind == "homophone" and word == "微信" and before == "加" and rng.random() < 0.3:
        if not _latin_edge(after):  # 加V / 加薇: the short aliases of configs/variants.yaml
            return "V"
        return None if "\u4e00" <= after <= "\u9fff" else "薇"
    # Never glue Latin onto a neighbouring letter/digit (abc微信 -> abcweixin is not undoable).
    for choices in latin[word] if kind == "pinyin" else (homo[word],):
        choices = [v for v in choices if not (_latin_edge(before) and _latin_edge(v[0]))
                   and not (_latin_edge(after) and _latin_edge(v[-1]))]
        if choices:
            break
    else:
        return None
    sub = rng.choice(choices)
    if kind == "pinyin" and rng.random() < 0.3:
        sub = sub.upper() if rng.random() < 0.5 else sub.capitalize()
    return sub


def _words(text: str, kind: str, rng: random.Random) -> str:
    """Homophone / pinyin / look-alike: table words first, generic characters otherwise."""
    free = _free(text)
    out, pos, hit = [], 0, False
    for m in _table()[1].finditer(text):
        a, b = m.span()
        before = (out[-1][-1:] if out and pos == a else "") or text[a - 1:a]
        sub = _word(text, a, b, before, kind, rng) if all(free[a:b]) else None
        if sub is not None:
            out += (text[pos:a], sub)
            pos, hit = b, True
    out.append(text[pos:])
    text = "".join(out)
    if kind == "lookalike":  # Latin letters become Cyrillic/Greek twins (normalize undoes it)
        free = _free(text)
        text = "".join(LATIN_LOOKALIKES[ch] if ch in LATIN_LOOKALIKES and free[i]
                       and rng.random() < 0.5 else ch for i, ch in enumerate(text))
    if hit:
        return text
    generic = {"homophone": HOMOPHONES, "lookalike": LOOKALIKES, "pinyin": PINYIN}[kind]
    spots = [i for i, ch in enumerate(text) if ch in generic]
    for i in sorted(rng.sample(spots, min(len(spots), 2)), reverse=True):
        if kind != "pinyin" or not (_latin_edge(text[i - 1:i] or " ")
                                    or _latin_edge(text[i + 1:i + 2] or " ")):
            text = text[:i] + generic[text[i]] + text[i + 1:]
    return text


_DEFAULT = Obfuscator()


def obfuscate(text: str, kind: str, rng: random.Random) -> str:
    """Apply one kind of disguise (`mixture`: three different kinds combined)."""
    return _DEFAULT.obfuscate(text, kind, rng)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("texts", nargs="*", help="messages (default: one per stdin line)")
    parser.add_argument("--kind", default="mixture", choices=KINDS + ("all",))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    kinds = BASE_KINDS + ("mixture",) if args.kind == "all" else (args.kind,)
    for text in args.texts or sys.stdin.read().splitlines():
        for kind in kinds:
            disguised = obfuscate(text, kind, rng)
            print(f"{kind}\t{disguised}\t{normalize(disguised)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
