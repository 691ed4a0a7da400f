"""Template language and slot fillers for the synthetic corpus (`data/synth.py`).

    python -m data.synth_templates fraud.loan/ln_fee_first 3   # renders one template 3 times

Templates live as data in `data/synth_slots/*.yaml` (one file per pool and region; the
`vocab*.yaml` files hold the slot vocabularies: `vocab.yaml` the mainland ones, `vocab_region.yaml`
those of Taiwan / Hong Kong / Macau) so that adding a scam pattern never means touching code. A
pool file names its `label`, optionally its `pool` (default: the label) and its `region`
(default `mainland`; `tw`, `hk` or `mo` for templates written in Traditional characters with
that region's vocabulary; `regions: {hk: [key, ...]}` moves single templates of a file to another
region). Templates sit under `templates:` (no kind) or under `kinds: {kind: {key: pattern}}`: a
kind is one scam or notice type of one region (`stock_group`, `bill_phish`, `lookalike` ...), and
the split (`data/synth.py`) puts templates of every kind on both sides, so each kind is measured
on phrasings the model never saw. A file may also hold several pools as a list of `sections:`
(each with its own `label` / `pool` / `templates` / `kinds`), sharing the file's `region` and
fragments. A template is one string in a tiny language, expanded in this order:

- `{@frag}` — one random choice from a named fragment list (file-local first, then the shared
  ones in `vocab.yaml`); fragments may contain everything below. Fragments are how greetings,
  bodies and calls to action are composed, so one template yields many surface forms.
- `[a|b|c]` — one random alternative (nestable; `[|x]` makes `x` optional).
- `{slot}` — a value: a vocabulary list (`{city}`), an entity field (`{bank.tel}`, the same
  bank for every `bank` field of one message), or a generator (`{amt:5-3000}`, `{phone}`,
  `{url:etc}`). A trailing digit gives an independent instance (`{city2}`); repeating the
  exact same slot repeats its value, so a message stays self-consistent.

Every random choice comes from the caller's `random.Random`, in text order, so a seed
fixes the output byte for byte.
"""
from __future__ import annotations

import random
import re
import string
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

SLOT_DIR = Path(__file__).resolve().parent / "synth_slots"

_FRAG = re.compile(r"\{@([a-z_]+)\}")
_ALT = re.compile(r"\[([^\[\]]*)\]")
_SLOT = re.compile(r"\{([a-z_]+?)(\d*)(?:\.([a-z_]+))?(?::([^{}]*))?\}")
_ALNUM = string.ascii_letters + string.digits
_LOWER_DIGITS = string.ascii_lowercase + string.digits


class TemplateError(ValueError):
    """A template file is malformed or refers to an unknown slot or fragment."""


def _range(arg: str, lo: int, hi: int) -> tuple[int, int]:
    if not arg:
        return lo, hi
    a, _, b = arg.partition("-")
    return int(a), int(b or a)


def _digits(rng: random.Random, n: int) -> str:
    return str(rng.randrange(10**n)).zfill(n)


def _amount(rng, arg):
    lo, hi = _range(arg, 5, 3000)
    cents = rng.randrange(lo * 100, hi * 100 + 1)
    if rng.random() < 0.3:
        cents -= cents % 100  # whole yuan, printed with .00 like real notices
    return f"{cents // 100}.{cents % 100:02d}"


def _round(rng, arg):
    lo, hi = _range(arg, 100, 5000)
    step = 1000 if hi >= 20000 else 100 if hi >= 1000 else 10
    return str(max(lo, rng.randrange(lo, hi + 1) // step * step))


def _phone(rng, arg):
    num = rng.choice("3456789") + _digits(rng, 9)
    num = "1" + num
    style = rng.random()
    if style < 0.12:
        return f"{num[:3]}-{num[3:7]}-{num[7:]}"
    if style < 0.2:
        return f"{num[:3]} {num[3:7]} {num[7:]}"
    return num


def _url(rng, arg, vocab, lure="lure", tld="tld"):
    words = vocab[lure]
    host = arg or rng.choice(words)
    joiner = rng.choice(["-", "", "", "-"])
    extra = ["tw", "tw", "hk", "gov", "vip", "online"] if lure == "lure_region" else ["cn", "vip", "online", "hk"]
    second = rng.choice(words + extra + [_digits(rng, 2), _digits(rng, 3)])
    domain = f"{host}{joiner}{second}" if second != host else f"{host}{_digits(rng, 2)}"
    if rng.random() < 0.25:
        domain = f"{rng.choice(['m', 'www', 'h5', 'wap'])}.{domain}"
    path = rng.choice(["", "", f"/{''.join(rng.choices(_LOWER_DIGITS, k=rng.randint(2, 6)))}"])
    scheme = rng.choice(["http://", "https://", "", "http://"])
    return f"{scheme}{domain}.{rng.choice(vocab[tld])}{path}"


def _short_url(rng, arg, vocab, hosts="short_host"):
    scheme = rng.choice(["", "http://", "https://"])
    return f"{scheme}{rng.choice(vocab[hosts])}/{''.join(rng.choices(_ALNUM, k=rng.randint(5, 7)))}"


def _wx(rng, arg, vocab):
    word = rng.choice(vocab["wx_word"])
    tail = _digits(rng, rng.randint(2, 6))
    return rng.choice([f"{word}{tail}", f"{word}_{tail}", f"{word}{word[:1]}{tail}", f"{word}-{tail}", f"{tail}{word}"])


def _given(rng, vocab):
    chars = vocab["given_char"]
    return rng.choice(chars) + (rng.choice(chars) if rng.random() < 0.6 else "")


def _plate(rng, arg, vocab):
    letter = rng.choice("ABCDEFGHJK")
    tail = "".join(rng.choices("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", k=5))
    return f"{rng.choice(vocab['province'])}{letter}{rng.choice(['', '·', ''])}{tail}"


def _tw_phone(rng, arg, vocab):
    num = "09" + _digits(rng, 8)
    style = rng.random()
    if style < 0.45:
        return f"{num[:4]}-{num[4:7]}-{num[7:]}"
    if style < 0.55:
        return f"{num[:4]} {num[4:7]} {num[7:]}"
    if style < 0.62:
        return f"+886 {num[1:4]} {num[4:7]} {num[7:]}"
    return num


def _tw_tel(rng, arg, vocab):
    area, first = rng.choice([("02", "2"), ("02", "8"), ("04", "2"), ("07", "3"), ("03", "3"), ("06", "2")])
    if rng.random() < 0.15:
        return f"0800-{_digits(rng, 3)}-{_digits(rng, 3)}"
    body = first + _digits(rng, 7 if area == "02" else 6)
    mid = 4 if area == "02" else 3
    return rng.choice([f"({area}){body[:mid]}-{body[mid:]}", f"{area}-{body[:mid]}-{body[mid:]}", f"{area}-{body}"])


def _hk_phone(rng, arg, vocab):
    """Hong Kong (8 digits, mobiles start 5/6/9) or, with arg `mo`, Macau (8 digits from 6)."""
    num = ("6" if arg == "mo" else rng.choice("5569")) + _digits(rng, 7)
    prefix = "+853 " if arg == "mo" else "+852 "
    style = rng.random()
    if style < 0.4:
        return f"{num[:4]} {num[4:]}"
    if style < 0.55:
        return prefix + f"{num[:4]} {num[4:]}"
    return num


def _money(rng, arg):
    """A whole amount as written in TW / HK notices: `1280` or `1,280`."""
    lo, hi = _range(arg, 100, 5000)
    value = rng.randint(lo, hi)
    r = rng.random()
    if value >= 10000 and r < 0.45:
        value -= value % 1000
    elif value >= 1000 and r < 0.7:
        value -= value % 100
    return f"{value:,}" if value >= 1000 and rng.random() < 0.5 else str(value)


def _line_id(rng, arg, vocab):
    word = rng.choice(vocab["line_word"])
    tail = _digits(rng, rng.randint(2, 5))
    return rng.choice([f"@{word}{tail}", f"@{word}{tail}", f"{word}{tail}", f"{word}_{tail}", f"{word}.{tail}"])


def _track(rng, arg, vocab):
    if rng.random() < 0.35:
        return _digits(rng, rng.choice([12, 13]))
    return f"{rng.choice(['RR', 'EE', 'CP', 'RB', 'LZ', 'EC'])}{_digits(rng, 9)}{arg or rng.choice(['TW', 'HK'])}"


def _tw_plate(rng, arg, vocab):
    letters = "".join(rng.choices("ABCDEFGHJKLMNPQRSTUVWXYZ", k=3))
    return rng.choice([f"{letters}-{_digits(rng, 4)}", f"{_digits(rng, 4)}-{letters[:2]}", f"{letters[:2]}-{_digits(rng, 4)}"])


def _roc_date(rng, arg, vocab):
    y, m, d = rng.randint(113, 115), rng.randint(1, 12), rng.randint(1, 28)
    return rng.choice([f"{y}年{m}月{d}日", f"{y}/{m:02d}/{d:02d}", f"{y}.{m:02d}.{d:02d}"])


def _t_name(rng, vocab):
    chars = vocab["t_given_char"]
    return rng.choice(vocab["t_surname"]) + rng.choice(chars) + (rng.choice(chars) if rng.random() < 0.8 else "")


# Generators: name -> f(rng, arg, vocab) -> str. Everything else must be a vocabulary list.
GENERATORS = {
    "code": lambda r, a, v: _digits(r, int(a) if a else r.choice([6, 6, 6, 4])),
    "digits": lambda r, a, v: r.choice("123456789") + _digits(r, int(a or 6) - 1),
    "tail": lambda r, a, v: _digits(r, 4),
    "amt": lambda r, a, v: _amount(r, a),
    "int": lambda r, a, v: str(r.randint(*_range(a, 1, 99))),
    "wan": lambda r, a, v: str(r.randint(*_range(a, 1, 50))),
    "round": lambda r, a, v: _round(r, a),
    "pct": lambda r, a, v: r.choice([f"{r.randint(1, 9)}.{r.randint(0, 9)}%", f"{r.randint(10, 40)}%",
                                     f"0.0{r.randint(1, 9)}%", f"{r.randint(2, 6)}.{r.randint(10, 99)}%"]),
    "md": lambda r, a, v: f"{r.randint(1, 12)}月{r.randint(1, 28)}日",
    "hm": lambda r, a, v: f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}",
    "ymd": lambda r, a, v: f"{r.randint(2024, 2026)}年{r.randint(1, 12)}月{r.randint(1, 28)}日",
    "year": lambda r, a, v: str(r.randint(2023, 2025)),
    "phone": lambda r, a, v: _phone(r, a),
    "landline": lambda r, a, v: f"0{r.choice(['10', '20', '21', '23', '27', '28', '29', '755', '571', '25'])}-{r.choice('2345678')}{_digits(r, 7)}",
    "qq": lambda r, a, v: r.choice("123456789") + _digits(r, r.randint(5, 9)),
    "wx": _wx,
    "url": _url,
    "surl": _short_url,
    # Taiwan / Hong Kong / Macau (vocab_region.yaml)
    "twphone": _tw_phone,
    "twtel": _tw_tel,
    "hkphone": _hk_phone,
    "money": lambda r, a, v: _money(r, a),
    "line": _line_id,
    "rurl": lambda r, a, v: _url(r, a, v, "lure_region", "tld_region"),
    "rsurl": lambda r, a, v: _short_url(r, a, v, "short_host_region"),
    "track": _track,
    "twplate": _tw_plate,
    "roc": _roc_date,
    "dm": lambda r, a, v: r.choice([f"{r.randint(1, 28)}/{r.randint(1, 12)}", f"{r.randint(1, 12)}月{r.randint(1, 28)}日"]),
    "slashmd": lambda r, a, v: r.choice([f"{r.randint(1, 12)}/{r.randint(1, 28)}", f"{r.randint(1, 12):02d}/{r.randint(1, 28):02d}"]),
    "tname": lambda r, a, v: _t_name(r, v),
    "tgiven": lambda r, a, v: r.choice(v["t_given_char"]) + r.choice(v["t_given_char"]),
    "order": lambda r, a, v: r.choice("123456789") + _digits(r, r.randint(11, 18)),
    "pickup": lambda r, a, v: r.choice([f"{r.randint(1, 30)}-{r.randint(1, 6)}-{_digits(r, 4)}", _digits(r, 6),
                                        f"{r.choice('ABCDEF')}{_digits(r, 4)}"]),
    "plate": _plate,
    "name": lambda r, a, v: r.choice(v["surname"]) + _given(r, v),
    "given": lambda r, a, v: _given(r, v),
    "xiao": lambda r, a, v: r.choice(["小", "阿"]) + r.choice(v["given_char"]),
    "boss": lambda r, a, v: r.choice(v["surname"]) + r.choice(v["title"]),
    "case": lambda r, a, v: f"（{r.randint(2023, 2025)}）{r.choice(v['province'])}{_digits(r, 4)}刑初{r.randint(100, 9999)}号",
    "flight": lambda r, a, v: r.choice(["CA", "MU", "CZ", "HU", "ZH", "MF", "3U"]) + str(r.randint(1000, 9999)),
    "train": lambda r, a, v: r.choice("GGDCK") + str(r.randint(10, 2999)),
    "stock": lambda r, a, v: r.choice(v["platform_word"]) + r.choice(["科技", "医药", "能源", "股份", "电子", "新材", "智能"]),
    "emoji": lambda r, a, v: r.choice(v["emoji"]),
}


@dataclass(frozen=True)
class Template:
    id: str         # "<pool>/<key>": the message's `group`, and the unit of the split
    label: str      # taxonomy class
    pool: str       # sampling pool, e.g. normal.notice / normal.personal / spam / fraud.loan
    pattern: str
    fragments: dict  # file-local fragments merged over the shared ones
    region: str = "mainland"  # one of REGIONS; sampling is per pool x (mainland | regional)
    kind: str = ""   # scam / notice type within its region; "" for the general templates


@dataclass(frozen=True)
class Library:
    templates: tuple[Template, ...]
    vocab: dict     # lists and entities

    def render(self, template: Template, rng: random.Random) -> str:
        text = template.pattern
        for _ in range(5):  # fragments may nest a few levels deep
            if "{@" not in text:
                break
            text = _FRAG.sub(lambda m: rng.choice(template.fragments[m.group(1)]), text)
        while "[" in text:  # innermost groups first; a stray "[" is caught by check()
            expanded = _ALT.sub(lambda m: rng.choice(m.group(1).split("|")), text)
            if expanded == text:
                break
            text = expanded
        values: dict = {}
        return _SLOT.sub(lambda m: self._slot(m, rng, values), text)

    def _slot(self, m: re.Match, rng: random.Random, values: dict) -> str:
        name, inst, field, arg = m.group(1), m.group(2), m.group(3), m.group(4) or ""
        entities = self.vocab["entities"]
        if field:
            key = ("entity", name, inst)
            if key not in values:
                values[key] = rng.choice(entities[name])
            return str(values[key][field])
        key = (name, inst, arg)
        if key not in values:
            if name in GENERATORS:
                values[key] = GENERATORS[name](rng, arg, self.vocab["lists"])
            else:
                values[key] = rng.choice(self.vocab["lists"][name])
        return values[key]

    def check(self) -> None:
        """Fail loudly on a reference to an unknown fragment, slot or entity field."""
        lists, entities = self.vocab["lists"], self.vocab["entities"]
        for t in self.templates:
            pending = [t.pattern]
            seen = set()
            while pending:
                text = pending.pop()
                for frag in _FRAG.findall(text):
                    if frag not in t.fragments:
                        raise TemplateError(f"{t.id}: unknown fragment {{@{frag}}}")
                    if frag not in seen:
                        seen.add(frag)
                        pending.extend(t.fragments[frag])
                for name, _, field, _ in _SLOT.findall(text):
                    if field:
                        if name not in entities or field not in entities[name][0]:
                            raise TemplateError(f"{t.id}: unknown entity field {{{name}.{field}}}")
                    elif name not in GENERATORS and name not in lists:
                        raise TemplateError(f"{t.id}: unknown slot {{{name}}}")


def _read_yaml(path: Path) -> dict:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise TemplateError(f"cannot read {path}: {e}") from e


MAINLAND = "mainland"
# Taiwan / Hong Kong / Macau templates are written in Traditional script with their own channels,
# brands and currency words; "mainland" ones in Simplified.
REGIONS = (MAINLAND, "tw", "hk", "mo")


def _merge(target: dict, extra: dict, what: str, path: Path) -> None:
    for key, value in (extra or {}).items():
        if key in target:
            raise TemplateError(f"{path}: {what} {key!r} is already defined in another vocab file")
        target[key] = value


def _section_templates(path: Path, raw: dict, region: str, fragments: dict, seen: set) -> list[Template]:
    """The templates of one pool section: `templates` (kind "") and `kinds` (kind -> templates)."""
    try:
        label, pool = raw["label"], raw.get("pool", raw["label"])
    except (TypeError, KeyError) as e:
        raise TemplateError(f"{path}: needs 'label' and 'templates' ({e})") from e
    if "templates" not in raw and "kinds" not in raw:
        raise TemplateError(f"{path}: needs 'label' and 'templates' ('templates')")
    fragments = {**fragments, **{k: [str(x) for x in v] for k, v in (raw.get("fragments") or {}).items()}}
    moved = {key: str(r) for r, keys in (raw.get("regions") or {}).items() for key in keys}
    groups = [("", raw.get("templates") or {})] + [(str(k), ts or {}) for k, ts in (raw.get("kinds") or {}).items()]
    out = []
    for kind, patterns in groups:
        for key, pattern in patterns.items():
            tid = f"{pool}/{key}"
            if tid in seen:
                raise TemplateError(f"duplicate template id {tid}")
            seen.add(tid)
            where = moved.pop(key, str(raw.get("region", region)))
            if where not in REGIONS:
                raise TemplateError(f"{path}: template {key}: region {where!r} is not one of {REGIONS}")
            out.append(Template(tid, label, pool, str(pattern), fragments, where, kind))
    if moved:
        raise TemplateError(f"{path}: 'regions' names unknown templates {sorted(moved)}")
    return out


@lru_cache(maxsize=4)
def load_library(slot_dir: str | None = None) -> Library:
    """Read the `vocab*.yaml` files and every pool file; templates keep file order, files sort by name."""
    folder = Path(slot_dir) if slot_dir else SLOT_DIR
    lists: dict = {}
    entities: dict = {}
    shared_raw: dict = {}
    vocab_paths = sorted(folder.glob("vocab*.yaml"))
    if not vocab_paths:
        raise TemplateError(f"cannot read {folder / 'vocab.yaml'}: no vocab file")
    for path in vocab_paths:
        raw = _read_yaml(path) or {}
        _merge(lists, raw.get("lists"), "list", path)
        _merge(entities, raw.get("entities"), "entity", path)
        _merge(shared_raw, raw.get("fragments"), "fragment", path)
    shared = {k: [str(x) for x in v] for k, v in shared_raw.items()}
    templates: list[Template] = []
    seen: set[str] = set()
    for path in sorted(folder.glob("*.yaml")):
        if path.name.startswith("vocab"):
            continue
        raw = _read_yaml(path)
        if not isinstance(raw, dict):
            raise TemplateError(f"{path}: needs 'label' and 'templates'")
        file_region = str(raw.get("region", MAINLAND))
        file_frags = {k: [str(x) for x in v] for k, v in (raw.get("fragments") or {}).items()}
        for section in raw.get("sections") or [raw]:
            templates.extend(_section_templates(path, section, file_region, {**shared, **file_frags}, seen))
    library = Library(tuple(templates), {"lists": lists, "entities": entities})
    library.check()
    return library


def restyle(text: str, rng: random.Random) -> str:
    """Surface noise applied to every class alike, so punctuation and the position of the
    【sender】 tag never tell classes apart: real SMS put the tag first or last, or omit it."""
    if text.startswith("【") and rng.random() < 0.15:
        close = text.find("】")
        tag, rest = text[: close + 1], text[close + 1:]
        text = rest + tag if rest.rstrip().endswith(("。", "！", "!", "~", "？")) else rest + "。" + tag
    r = rng.random()
    if r < 0.08:
        text = text.replace("，", ",")
    elif r < 0.14:
        text = text.replace("，", " ")
    if rng.random() < 0.1 and text.endswith("。"):
        text = text[:-1]
    return text.strip()


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    library = load_library()
    wanted = args[0] if args else None
    count = int(args[1]) if len(args) > 1 else 3
    rng = random.Random(0)
    for t in library.templates:
        if wanted is None or t.id == wanted or t.pool == wanted:
            for _ in range(count if wanted else 1):
                print(f"{t.id}\t{restyle(library.render(t, rng), rng)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
