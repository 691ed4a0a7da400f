import pytest

from tests.conftest import REPO
from training.config import ConfigError, load_config


def test_defaults_and_yaml_override(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 3\ndata:\n  synthetic_n: 500\n", encoding="utf-8")
    cfg = load_config(path)
    assert cfg.epochs == 3.0 and cfg.data.synthetic_n == 500 and cfg.base_model == "m3e-small"


def test_repo_configs_load():
    names = ["configs/default.yaml", "configs/sms.yaml", "configs/chat.yaml"] + sorted(
        str(p.relative_to(REPO)) for p in (REPO / "configs" / "experiments").glob("*.yaml"))
    assert len(names) >= 5
    for name in names:
        load_config(REPO / name)


@pytest.mark.parametrize("overrides, message", [
    ({"epoch": 1}, "unknown key"),
    ({"data.synthetic_nn": 1}, "unknown key"),
    ({"max_length": "long"}, "expected int"),
    ({"max_length": 4}, "max_length"),
    ({"class_weights": "auto"}, "class_weights"),
    ({"data.repeat": {"telecom_fraud_texts": 0}}, "repeat"),
    ({"data.repeat": {"telecom_fraud_texts": 1.5}}, "repeat"),
    ({"data.synthetic_n": 0}, "no data"),
    ({"learning_rate": 5}, "learning_rate"),
    ({"prior_correction": "yes"}, "expected bool"),
    ({"soup": 0}, "soup=0 must be"),
    ({"soup": True}, "soup: expected int"),
    ({"order_seed": True}, "order_seed=True must be"),
])
def test_invalid_configs_fail_clearly(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_unreadable_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("epochs: [1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(path)


def test_a_training_config_extends_another_key_by_key(tmp_path):
    """`extends` works for `fanzha train` as for distill: the parent is read first, nested maps are
    merged (one cap set, the other caps kept), and the experiment in configs/experiments/ is
    sms.yaml but for the keys it names."""
    sms = load_config(REPO / "configs/sms.yaml")
    chatcaps = load_config(REPO / "configs/experiments/sms-chatcaps.yaml")
    assert chatcaps.data.caps["teleantifraud_synth:fraud"] == 3000 != sms.data.caps["teleantifraud_synth:fraud"]
    assert chatcaps.data.caps["spam80w:normal"] == sms.data.caps["spam80w:normal"]  # not named: kept
    assert chatcaps.data.repeat == {k: 3 for k in sms.data.repeat}
    assert chatcaps.soup == sms.soup and chatcaps.certify_legit == sms.certify_legit
    assert chatcaps.output_dir == "artifacts/experiments/sms-chatcaps"

    (tmp_path / "a.yaml").write_text("extends: b.yaml\nepochs: 2\n", encoding="utf-8")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="loops back"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("extends: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="must be the path"):
        load_config(tmp_path / "c.yaml")


def test_the_config_printer_takes_set_and_says_what_is_wrong(capsys):
    """`python -m training.config FILE --set KEY=VALUE` prints what fanzha train would train; a bad
    file or key is one line and exit 2, not a traceback."""
    from training.config import main

    assert main([str(REPO / "configs/experiments/sms-chatcaps.yaml"), "--set", "epochs=1"]) == 0
    printed = capsys.readouterr().out
    assert "epochs: 1" in printed and "teleantifraud_synth:fraud: 3000" in printed
    assert main([str(REPO / "configs/nope.yaml")]) == 2
    assert "cannot read config" in capsys.readouterr().err
    assert main([str(REPO / "configs/sms.yaml"), "--set", "soup=0"]) == 2
