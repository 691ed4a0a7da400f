"""data/normalize.py: the disguises it undoes and the legitimate messages it must not damage.

    .venv/bin/python -m pytest tests/data -q -k normalize
"""
import random
import re
import unicodedata

import pytest

from data.normalize import benchmark, load_variants, main, normalize, url_spans

# Realistic legitimate SMS (the messages a filter must never block) -> exact normalized form.
LEGIT = {
    "【中国银行】您尾号1234的账户于11月3日14:22转入人民币256.00元，余额3,456.78元。":
        "【中国银行】您尾号1234的账户于11月3日14:22转入人民币256.00元,余额3,456.78元。",
    "【招商银行】您账户0088于11月05日10:31快捷支付扣款人民币99.90元，如非本人操作请致电95555。":
        "【招商银行】您账户0088于11月05日10:31快捷支付扣款人民币99.90元,如非本人操作请致电95555。",
    "【支付宝】验证码：483920，5分钟内有效，请勿泄露给他人。":
        "【支付宝】验证码:483920,5分钟内有效,请勿泄露给他人。",
    "【微信支付】您的验证码为 736251，用于登录，切勿告知他人。":
        "【微信支付】您的验证码为 736251,用于登录,切勿告知他人。",
    "【淘宝】您的包裹已由中通快递揽收，运单号75312345678901，详情 https://m.tb.cn/h.5XyZ 查看。":
        "【淘宝】您的包裹已由中通快递揽收,运单号75312345678901,详情 https://m.tb.cn/h.5xyz 查看。",
    "【顺丰速运】您的快件已到达菜鸟驿站，取件码8-3-1204，请于18:00前领取。":
        "【顺丰速运】您的快件已到达菜鸟驿站,取件码8-3-1204,请于18:00前领取。",
    "【12306】订单E123456789，张三您已购11月20日G1234次5车12F号，北京南08:00开。":
        "【12306】订单e123456789,张三您已购11月20日g1234次5车12f号,北京南08:00开。",
    "【中国移动】尊敬的客户，您本月话费账单：套餐费58.00元，流量费0.00元，详询10086。":
        "【中国移动】尊敬的客户,您本月话费账单:套餐费58.00元,流量费0.00元,详询10086。",
    "【国家反诈中心】提醒：凡是自称客服让您转账到“安全账户”的都是诈骗！":
        "【国家反诈中心】提醒:凡是自称客服让您转账到“安全账户”的都是诈骗!",
    "您好，明天下午3点的会议改到会议室B，请准时参加。": "您好,明天下午3点的会议改到会议室b,请准时参加。",
    "妈，我到学校了，钱收到了，谢谢！": "妈,我到学校了,钱收到了,谢谢!",
    "【京东】您的订单JD20231103001已退款￥128.50，预计1-3个工作日原路退回。":
        "【京东】您的订单jd20231103001已退款¥128.50,预计1-3个工作日原路退回。",
    "【工商银行】您的信用卡本期账单￥2,345.67，到期还款日11月25日。回复TD退订":
        "【工商银行】您的信用卡本期账单¥2,345.67,到期还款日11月25日。回复td退订",
    "Your verification code is 483920. Do not share it with anyone.":
        "your verification code is 483920. do not share it with anyone.",
    "【腾讯科技】您的QQ号123456789于2023-11-03 14:22在新设备登录，如非本人请访问 https://aq.qq.com 冻结。":
        "【腾讯科技】您的qq号123456789于2023-11-03 14:22在新设备登录,如非本人请访问 https://aq.qq.com 冻结。",
    "【美团】您的外卖已送达，感谢使用！有问题请联系客服 10107888。":
        "【美团】您的外卖已送达,感谢使用!有问题请联系客服 10107888。",
    "尊敬的客户 您好，您的手机尾号5678已欠费12.50元，登录 www.10086.cn 缴费。":
        "尊敬的客户 您好,您的手机尾号5678已欠费12.50元,登录 www.10086.cn 缴费。",
    "好的...我知道了，周末见～": "好的...我知道了,周末见~",
}


@pytest.mark.parametrize("raw, expected", LEGIT.items())
def test_legitimate_messages_keep_their_exact_meaning(raw, expected):
    assert normalize(raw) == expected


@pytest.mark.parametrize("raw", LEGIT)
def test_legitimate_codes_amounts_urls_and_brands_survive(raw):
    out = normalize(raw)
    nfkc = unicodedata.normalize("NFKC", raw).lower()
    assert re.findall(r"\d+(?:[.,:\-]\d+)*", out) == re.findall(r"\d+(?:[.,:\-]\d+)*", nfkc)
    assert re.findall(r"【[^】]*】", out) == re.findall(r"【[^】]*】", nfkc)
    assert [out[a:b] for a, b in url_spans(out)] == [nfkc[a:b] for a, b in url_spans(nfkc)]


@pytest.mark.parametrize("raw, expected", [
    ("ＡＢＣ１２３（测试）", "abc123(测试)"),                  # NFKC / full-width
    ("加\u200b微\u200d信\ufeff", "加微信"),                      # zero-width
    ("a\x00b\x07c\x1bd", "abcd"),                                 # controls incl. NUL
    ("line1\nline2\r\n\tend", "line1 line2 end"),                 # whitespace collapsed
    ("  a   b \u3000 c  ", "a b c"),
    ("a \x00 b", "a b"),                                          # no double space left behind
    ("HELLO World", "hello world"),                               # Latin lower-cased
    ("轉帳給我，請加微信", "转账给我,请加微信"),                # Traditional -> Simplified
    ("這個帳戶餘額不足，請儘快處理", "这个账户余额不足,请尽快处理"),
    ("回🔥覆1辦理", "回复1办理"),                                 # t2s sees the joined word
    ("", ""),
    ("   ", ""),
])
def test_basic_steps(raw, expected):
    assert normalize(raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ("①②③", "123"), ("⑴⑵⑶", "123"), ("⒈⒉⒊", "123"), ("❶❷❸", "123"), ("➀➁➂", "123"),
    ("➊➋➌", "123"), ("⓵⓶⓷", "123"), ("⓪⓿🄋", "000"), ("㈠㈡㈢", "123"), ("㊀㊁㊂", "123"),
    ("１２３", "123"), ("٣٤٥", "345"), ("१२३", "123"), ("⑩⑳", "1020"), ("𝟏𝟐", "12"),
    ("1️⃣2️⃣3️⃣", "123"), ("验证码⑥⑤④③②①", "验证码654321"),
])
def test_digit_variants_become_ascii(raw, expected):
    assert normalize(raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ("加★微★信", "加微信"), ("加 微 信", "加微信"), ("转-账", "转账"), ("加*微*信", "加微信"),
    ("加|微|信", "加微信"), ("加.微.信", "加微信"), ("加·微·信", "加微信"), ("加_微_信", "加微信"),
    ("加❤️微❤️信", "加微信"), ("加 ★ 微 ★ 信", "加微信"), ("加💰💰微信", "加微信"),
    ("日 结 300元", "日结 300元"), ("请加 微 信号", "请加微信号"), ("我 爱 你", "我爱你"),
    ("v❤x", "微信"), ("1★2★3", "123"), ("恭喜🎉🎉 您", "恭喜您"),
])
def test_inserted_separators_are_removed(raw, expected):
    assert normalize(raw) == expected


@pytest.mark.parametrize("raw", [
    "你好,世界。再见!", "好的...我知道了", "中国银行 提醒您", "你好 世界 再见", "138****5678",
    "2024-11-03", "256.00元", "18:00-20:00", "男/女", "他说——算了", "【顺丰】", "“安全账户”",
    "(1)第一条;(2)第二条", "a*b=c", "v1.2版本", "c++ 工程师", "张三、李四", "领取🎁!", "散步~我会",
    "nike+以", "spa50+孕妇",
])
def test_meaningful_punctuation_is_kept(raw):
    assert normalize(raw) == raw


def test_symbols_between_digits_never_merge_numbers():
    assert normalize("验证码：483920 🔒 5分钟内有效") == "验证码:483920 5分钟内有效"


def _table_cases():
    table = load_variants()
    return [(v, c) for c, vs in table.variants.items() for v in (c,) + vs]


@pytest.mark.parametrize("variant, canonical", _table_cases())
def test_every_table_variant_maps_to_its_canonical_form(variant, canonical):
    assert normalize(variant) == canonical
    assert normalize(f"请{variant}，") == f"请{canonical},"
    spread = "★".join(variant)  # separators inside a variant: 薇★信, v★x
    assert normalize(spread) == canonical


@pytest.mark.parametrize("raw, expected", [
    ("请加V信：abc123", "请加微信:abc123"), ("加VX领取", "加微信领取"), ("v.x: ab12", "微信: ab12"),
    ("wei xin号", "微信号"), ("WeChat", "微信"), ("加V：abc123", "加微信:abc123"),
    ("+v：abc", "+微信:abc"), ("加薇❤", "加微信❤"), ("私q 123", "私qq 123"), ("加扣：123", "加qq:123"),
    ("企鹅号12345", "qq号12345"), ("转账用zfb", "转账用支付宝"), ("zhuan zhang给我", "转账给我"),
    ("贷kuan秒批，daikuan", "贷款秒批,贷款"), ("代款", "贷款"), ("退kuan", "退款"), ("刷dan", "刷单"),
    ("返li", "返利"), ("兼zhi", "兼职"), ("客fu", "客服"), ("yhk号", "银行卡号"), ("验证玛", "验证码"),
    ("链jie", "链接"), ("转 账", "转账"), ("加*vx", "加微信"), ("vх", "微信"),  # Cyrillic х
    ("zhuan帐号", "转账号"),
    # other regions' channels, after OpenCC (賴 -> 赖, 飛機 -> 飞机): issue 19
    ("加賴：stock888", "加line:stock888"), ("加我賴，領飆股", "加我line,领飙股"), ("LINE ID: tw168", "line: tw168"),
    ("加飛機 @fx88", "加telegram @fx88"), ("加TG：fx88", "加telegram:fx88"), ("纸飞机联系", "telegram联系"),
    ("加WA 6123 4567", "加whatsapp 6123 4567"), ("Whats App 客服", "whatsapp 客服"), ("聯絡賴", "联络line"),
])
def test_variant_table_in_context(raw, expected):
    assert normalize(raw) == expected


@pytest.mark.parametrize("raw", [
    "南极企鹅", "vip会员", "wxyz", "参加vip活动", "v1.2", "vx123", "abc_vx", "货款已结清", "连接成功",
    "克服困难", "增加威胁", "http://a.cn/vx/1", "https://wx.qq.com/zfb", "wx@163.com", "qq.com",
    "my-vx.com", "220v电压",
    "坐飞机回台北", "赖清德", "我赖你", "online", "deadline 11/3", "wait", "tgv",
])
def test_look_alike_words_that_are_not_disguises_are_untouched(raw):
    assert normalize(raw) == raw


def test_idempotent_on_messages_and_random_garbage():
    pieces = ["加", "+", "v", "V", "x", "q", "扣", "薇", "信", "微", "转", "账", "帐", " ", ".", "..",
              "*", "★", "·", "-", "@", "/", ":", "，", "zfb", "zhuan", "kuan", "贷", "款", "号",
              "1", "①", "⑴", "❶", "٣", "😀", "❤️", "\u200b", "\x00", "\n", "a", ".com", "t.cn/",
              "http://", "回", "覆", "來", "wei", "xin", "Ｖ", "х", "×"]
    rng = random.Random(0)
    texts = list(LEGIT) + ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))
                           for _ in range(3000)]
    for text in texts:
        once = normalize(text)
        assert normalize(once) == once, text


@pytest.mark.parametrize("bad", [None, b"bytes", 123, ["list"]])
def test_non_string_raises_type_error(bad):
    with pytest.raises(TypeError):
        normalize(bad)


_SCAM = "兼职刷单，日结300-500元，加★薇★信：abc8866，稳赚不赔！"  # 35 characters


@pytest.mark.parametrize("text, expected", [
    ((_SCAM * 3000)[:100_000], "兼职刷单,日结300-500元,加微信:abc8866,稳赚不赔!" * 2857 + "兼职刷单,"),
    ("a" * 100_000, "a" * 100_000), ("-" * 100_000, "-" * 100_000), ("- " * 50_000, ("- " * 50_000).rstrip()),
    ("加-" * 50_000, "加" * 50_000 + "-"), ("★ " * 50_000, ("★ " * 50_000).rstrip()), ("x@" * 50_000, "x@" * 50_000),
    ("v" + "★" * 99_998 + "x", "微信"), ("1." * 50_000, "1." * 50_000),
])
def test_long_and_pathological_texts(text, expected):
    # Speed is measured by `make bench` (python -m data.normalize --bench), never by a timed unit
    # test; this checks what 100,000-character and pathological inputs become.
    out = normalize(text)
    assert out == expected
    assert normalize(out) == out


def test_bad_variant_tables_are_rejected(tmp_path):
    bad = tmp_path / "variants.yaml"
    bad.write_text("variants:\n  轉帳: [转帐]\n", encoding="utf-8")
    with pytest.raises(ValueError):
        load_variants(bad)
    bad.write_text("variants:\n  微信: [v x]\n", encoding="utf-8")
    with pytest.raises(ValueError):
        load_variants(bad)


def test_benchmark_and_cli(capsys):
    assert benchmark(["加★薇★信"], repeat=5) > 0
    assert main(["加★薇★信：ＡＢＣ①②③"]) == 0
    assert capsys.readouterr().out == "加微信:abc123\n"


def test_a_normalizer_uses_its_own_table_only(tmp_path):
    """Serving builds a Normalizer from its artifact's table; the default table is left alone."""
    from data.normalize import VARIANTS_PATH, Normalizer

    own = tmp_path / "variants.yaml"
    own.write_text("variants:\n  验证码: [取件码]\n", encoding="utf-8")
    normalizer = Normalizer(own)
    assert normalizer("取件码：8-3-1204，加薇信") == "验证码:8-3-1204,加薇信"  # no 薇信 in this table
    assert normalize("取件码：8-3-1204，加薇信") == "取件码:8-3-1204,加微信"  # the default: unchanged
    assert normalize("取件码：1", table=own) == "验证码:1" and normalize("取件码：1", table=normalizer) == "验证码:1"
    assert Normalizer(VARIANTS_PATH)(LEGIT_SAMPLE) == normalize(LEGIT_SAMPLE)
    import hashlib

    assert normalizer.sha256 == hashlib.sha256(own.read_bytes()).hexdigest()


def test_the_default_table_can_be_named(tmp_path, monkeypatch):
    import data.normalize as norm

    own = tmp_path / "variants.yaml"
    own.write_text("variants:\n  验证码: [取件码]\n", encoding="utf-8")
    monkeypatch.setenv("FANZHA_VARIANTS", str(own))
    norm._default.cache_clear()
    try:
        assert norm.default_table_path() == own and normalize("取件码") == "验证码"
    finally:
        monkeypatch.delenv("FANZHA_VARIANTS")
        norm._default.cache_clear()
    assert normalize("取件码") == "取件码"


LEGIT_SAMPLE = "【中国银行】您尾号1234的账户于11月3日14:22转入人民币256.00元，加★薇★信 ＶＸ"


def test_basic_is_the_generic_clean_up_only():
    from data.normalize import basic

    assert basic("加★微★信\u200b ｖｘ：AB12\t\t嗎") == "加★微★信 vx:ab12 嗎"  # no separators, variants or t2s
    assert normalize("加★微★信\u200b ｖｘ：AB12\t\t嗎") != basic("加★微★信\u200b ｖｘ：AB12\t\t嗎")
    with pytest.raises(TypeError):
        basic(None)
