"""``linas evaluate CONFIG NETWORK``: one JSON line of metrics; networks in three formats."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from linas.cli import main
from linas.evaluator import make_evaluator
from linas.networks import network_format, to_config
from linas.spaces import get_space

REPO = Path(__file__).resolve().parents[1]
OFA_CONFIG = REPO / "experiments" / "configs" / "ofa_imagenet_note10.yaml"
HAT_CONFIG = REPO / "experiments" / "configs" / "hat_wmt14_raspberrypi.yaml"
SPEC = {"ks": [3, 5, 7, 3, 5, 7, 3, 5, 7, 3, 5, 7, 3, 5, 7, 3, 5, 7, 3, 5],
        "e": [3, 4, 6, 3, 4, 6, 3, 4, 6, 3, 4, 6, 3, 4, 6, 3, 4, 6, 3, 4],
        "d": [2, 3, 4, 2, 4], "r": [176]}
# HAT's WMT'14 En-De SubTransformer for the Raspberry Pi at 4.0 s (HAT's configs/wmt14.en-de/subtransformer).
HAT_NET = {"encoder-embed-dim-subtransformer": 512, "decoder-embed-dim-subtransformer": 512,
           "encoder-ffn-embed-dim-all-subtransformer": [3072, 2048, 3072, 2048, 3072, 2048],
           "decoder-ffn-embed-dim-all-subtransformer": [1024, 2048],
           "encoder-layer-num-subtransformer": 6, "decoder-layer-num-subtransformer": 2,
           "encoder-self-attention-heads-all-subtransformer": [8, 8, 8, 4, 8, 8],
           "decoder-self-attention-heads-all-subtransformer": [4, 4],
           "decoder-ende-attention-heads-all-subtransformer": [8, 8],
           "decoder-arbitrary-ende-attn-all-subtransformer": [-1, -1]}


@pytest.fixture(scope="module")
def ofa():
    space = get_space("ofa_imagenet")
    return space, make_evaluator("ofa_imagenet", space, {})


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out.strip().splitlines(), err.strip().splitlines()


def write(path: Path, data, fmt="json") -> Path:
    path.write_text(json.dumps(data) if fmt == "json" else yaml.safe_dump(data))
    return path


def test_ofa_native_spec_and_variable_names_give_the_same_line(tmp_path, capsys, ofa):
    space, evaluator = ofa
    expected = evaluator.evaluate_one(to_config(SPEC, space))
    code, out, err = run(capsys, "evaluate", OFA_CONFIG, write(tmp_path / "net.json", SPEC))
    assert code == 0 and len(out) == 1 and not err
    assert json.loads(out[0]) == pytest.approx(expected)
    assert set(json.loads(out[0])) == {"top1", "latency", "macs", "params"}
    by_name = to_config(SPEC, space)
    code, out2, _ = run(capsys, "evaluate", OFA_CONFIG, write(tmp_path / "net.yaml", by_name, "yaml"))
    assert code == 0 and out2 == out
    code, out3, _ = run(capsys, "evaluate", OFA_CONFIG, write(tmp_path / "r.json", {**SPEC, "r": 176}))
    assert out3 == out


def test_a_list_gives_one_line_per_network(tmp_path, capsys):
    other = {**SPEC, "d": [4, 4, 4, 4, 4], "r": [224]}
    code, out, _ = run(capsys, "evaluate", OFA_CONFIG, write(tmp_path / "nets.json", [SPEC, other]))
    assert code == 0 and len(out) == 2
    assert json.loads(out[1])["latency"] > json.loads(out[0])["latency"]


@pytest.mark.parametrize("network, fragment", [
    ({**SPEC, "ks": SPEC["ks"][:19] + [9]}, "ks_19=9 is not one of [3, 5, 7]"),
    ({**SPEC, "r": [300]}, "resolution=300 is not one of [160, 176, 192, 208, 224]"),
    ({**SPEC, "d": [2, 3, 4, 2]}, "'d' must be a list of 5 integers"),
    ({**SPEC, "r": [160, 176]}, "'r' must be one resolution"),
    ({"ks_0": 3, "depth": 2}, "unknown variable(s) ['depth']"),
    ({k: v for k, v in to_config(SPEC, get_space("ofa_imagenet")).items() if k != "d_3"}, "missing variable(s) ['d_3']"),
    (HAT_NET, "a HAT SubTransformer does not fit space 'ofa_imagenet'"),
])
def test_bad_networks_are_one_line_errors(tmp_path, capsys, network, fragment):
    code, out, err = run(capsys, "evaluate", OFA_CONFIG, write(tmp_path / "bad.json", network))
    assert code == 2 and not out
    assert len(err) == 1 and err[0].startswith("linas: error: ") and fragment in err[0], err


def test_hat_subtransformer_yaml(tmp_path, capsys):
    path = write(tmp_path / "hat.yml", HAT_NET, "yaml")
    code, out, err = run(capsys, "evaluate", HAT_CONFIG, path)
    assert code == 0, err
    metrics = json.loads(out[0])
    assert set(metrics) == {"latency", "macs", "params"}
    assert 3000 < metrics["latency"] < 5000  # HAT measured about 4.0 s for it on the Raspberry Pi
    space = get_space("hat_wmt14_ende")
    config = to_config(HAT_NET, space)
    assert config["decoder_layer_num"] == 2 and config["decoder_ffn_embed_dim_1"] == 2048
    assert config["decoder_arbitrary_ende_attn_1"] == -1 and config["encoder_self_attention_heads_3"] == 4
    assert network_format(HAT_NET) == "hat"
    bad = {**HAT_NET, "decoder-ffn-embed-dim-all-subtransformer": [512, 2048]}
    code, _, err = run(capsys, "evaluate", HAT_CONFIG, write(tmp_path / "bad.yml", bad, "yaml"))
    assert code == 2 and "decoder_ffn_embed_dim_0=512 is not one of [3072, 2048, 1024]" in err[0]
    short = {**HAT_NET, "decoder-ende-attention-heads-all-subtransformer": [8]}
    code, _, err = run(capsys, "evaluate", HAT_CONFIG, write(tmp_path / "short.yml", short, "yaml"))
    assert code == 2 and "'decoder-ende-attention-heads-all-subtransformer' has 1 values for 2 layers" in err[0]


def test_the_installed_command(tmp_path):
    """The real entry point: one JSON line on stdout; a bad file is exit status 2."""
    ok = subprocess.run([sys.executable, "-m", "linas.cli", "evaluate", str(OFA_CONFIG),
                         str(write(tmp_path / "n.json", SPEC))], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0 and len(ok.stdout.strip().splitlines()) == 1
    assert json.loads(ok.stdout)["top1"] > 70
    (tmp_path / "broken.json").write_text("{ks: [")
    bad = subprocess.run([sys.executable, "-m", "linas.cli", "evaluate", str(OFA_CONFIG),
                          str(tmp_path / "broken.json")], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "neither JSON nor YAML" in bad.stderr
